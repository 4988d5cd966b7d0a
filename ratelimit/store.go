package ratelimit

import (
	"context"
	"time"
)

// CounterID names one counter: one key of one budget in one window, or in one
// bucket of a rolling window.
type CounterID struct {
	Budget string
	Key    string
	Start  time.Time // window (or bucket) start, UTC; the Unix epoch for a total
}

// Lease identifies one request's reservation across every counter it holds.
// A store remembers what each lease holds, so that a request that never
// settles (a crashed caller, a lost stream) cannot pin its reservation
// forever: once Expires has passed the store releases the lease's holds on
// its own, without charging them.
type Lease struct {
	ID      string    // unique per reservation
	Expires time.Time // after it the store may release the holds
}

// Hold is an amount held on one counter between admission and settlement.
// It carries the limit so a store needs no budget configuration.
//
// A hold fits when the counters of its budget and key whose Start lies in
// [Since, ID.Start], summed (spent and reserved), plus Amount, do not exceed
// Limit. A zero Since means ID.Start: a calendar window is one counter. A
// rolling window (RPM, TPM) is a series of bucket counters: ID.Start is the
// current bucket and Since the oldest bucket still inside the window.
type Hold struct {
	ID     CounterID
	Since  time.Time
	Limit  int64
	Amount int64
	End    time.Time // window end: counters at or before ID.Start may be dropped after it
}

// From is the first bucket start the hold's check covers.
func (h *Hold) From() time.Time {
	if h.Since.IsZero() {
		return h.ID.Start
	}
	return h.Since
}

// Counter is the state of one counter, or a sum over a rolling window's
// buckets.
type Counter struct {
	Spent    int64 // settled
	Reserved int64 // held by requests in flight
}

// CounterState is a counter with its identity, for status and metrics.
type CounterState struct {
	ID CounterID
	Counter
}

// ReserveResult is what Reserve did.
type ReserveResult struct {
	// Refused is the index of the first hold that did not fit, or -1 when
	// every hold was reserved.
	Refused int
	// Counters has one entry per hold, summed over the hold's range as its
	// check saw it: after the reservation when every hold fitted, before it
	// otherwise. Callers derive "remaining" headers from it without another
	// round trip to the store.
	Counters []Counter
}

// Store keeps counters. Implementations must make Reserve atomic across all
// holds: concurrent callers never see a partial reservation of another
// caller, and never both pass a check that only one of them fits.
type Store interface {
	// Reserve adds every hold's Amount to its counter's reserved total, and
	// records them under lease, if every hold fits (see Hold). It is all or
	// none: when a hold does not fit it changes nothing.
	Reserve(ctx context.Context, lease Lease, holds []Hold) (ReserveResult, error)
	// Settle drops the lease's reservations (unless the store already
	// released them because the lease expired) and adds actual[i] to the spent
	// total of holds[i].ID. actual may be nil to release without charging.
	// holds must be the slice given to Reserve.
	Settle(ctx context.Context, lease Lease, holds []Hold, actual []int64) error
	// Get returns a hold's counters summed over its range, as Reserve would
	// check them (zero when nothing was ever charged). Amount is ignored.
	Get(ctx context.Context, h Hold) (Counter, error)
	// List returns every counter the store holds whose window has not ended at now.
	List(ctx context.Context, now time.Time) ([]CounterState, error)
	// Reset deletes every counter of budget, or only those of key when key is
	// not empty, in every window, with the reservations on them. A lease
	// settled after a reset still charges what it spent.
	Reset(ctx context.Context, budget, key string) error
	// Close flushes and releases the store.
	Close() error
}

// Records is what a store keeps besides counters, shared by every process
// on the store (replicas on one Redis): small named documents, such as the
// budgets created through the admin API, and claims, so that an alert is
// sent once between them. Both stores implement it.
type Records interface {
	// PutRecord stores data under kind and name, replacing what was there.
	PutRecord(ctx context.Context, kind, name string, data []byte) error
	// DeleteRecord removes it; removing nothing is not an error.
	DeleteRecord(ctx context.Context, kind, name string) error
	// ListRecords returns every record of kind, by name.
	ListRecords(ctx context.Context, kind string) (map[string][]byte, error)
	// Claim returns true the first time key is claimed, and false until
	// the claim expires at until.
	Claim(ctx context.Context, key string, until time.Time) (bool, error)
}
