package ratelimit

import (
	"context"
	"time"
)

// CounterID names one counter: one key of one budget in one window.
type CounterID struct {
	Budget string
	Key    string
	Start  time.Time // window start, UTC
}

// Hold is an amount held on one counter between admission and settlement.
// It carries the limit so a store needs no budget configuration.
type Hold struct {
	ID     CounterID
	Limit  int64
	Amount int64
	End    time.Time // window end: the counter may be dropped after it
}

// Counter is the state of one counter.
type Counter struct {
	Spent    int64 // settled
	Reserved int64 // held by requests in flight
}

// CounterState is a counter with its identity, for status and metrics.
type CounterState struct {
	ID CounterID
	Counter
}

// Store keeps counters. Implementations must make Reserve atomic across all
// holds: concurrent callers never see a partial reservation.
type Store interface {
	// Reserve adds every hold's Amount to its counter's reserved total if, for
	// every hold, spent+reserved+Amount ≤ Limit. It is all or none: when a
	// hold does not fit it returns that hold's index and changes nothing;
	// when all fit it returns -1.
	Reserve(ctx context.Context, holds []Hold) (refused int, err error)
	// Settle drops each hold's reservation and adds actual[i] to its spent
	// total. actual may be nil to release without charging.
	Settle(ctx context.Context, holds []Hold, actual []int64) error
	// Get returns one counter (zero when it has never been charged).
	Get(ctx context.Context, id CounterID) (Counter, error)
	// List returns every counter the store holds whose window has not ended at now.
	List(ctx context.Context, now time.Time) ([]CounterState, error)
	// Close flushes and releases the store.
	Close() error
}
