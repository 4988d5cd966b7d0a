package ratelimit

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/money"
)

// A reservation travels as text when one process admits a request and
// another settles it: tokenmeter's gate answers Envoy before the upstream
// call, and its observer, possibly another replica sharing the store, reads
// the response (Envoy carries the text in dynamic metadata). The text is
// what Settle needs: the lease, each hold, and each budget's unit and
// currency, so settling works even after a reload dropped the budget.
//
//	v1 <lease id> <lease expiry ns> <admission ns> <hold> <hold> ...
//	hold: budget,key,unit,currency,start ns,since ns,end ns,limit,amount
//
// Strings are query-escaped (no space or comma survives); times are Unix
// nanoseconds, "-" for the zero time (0 is the epoch, where a total
// window's counter starts).

const handoffVersion = "v1"

// Text encodes r for UnmarshalReservation. A nil or empty reservation (no
// budget matched) encodes to "".
func (r *Reservation) Text() string {
	if r == nil || len(r.holds) == 0 {
		return ""
	}
	b := make([]byte, 0, 64+96*len(r.holds))
	b = append(b, handoffVersion...)
	b = append(append(b, ' '), url.QueryEscape(r.lease.ID)...)
	b = appendTime(append(b, ' '), r.lease.Expires)
	b = appendTime(append(b, ' '), r.at)
	for i, h := range r.holds {
		bud := r.budgets[i]
		b = append(b, ' ')
		b = append(b, url.QueryEscape(h.ID.Budget)...)
		b = append(b, ',')
		b = append(b, url.QueryEscape(h.ID.Key)...)
		b = append(b, ',')
		b = strconv.AppendUint(b, uint64(bud.Unit), 10)
		b = append(b, ',')
		b = append(b, url.QueryEscape(string(bud.Currency))...)
		for _, t := range []time.Time{h.ID.Start, h.Since, h.End} {
			b = appendTime(append(b, ','), t)
		}
		b = strconv.AppendInt(append(b, ','), h.Limit, 10)
		b = strconv.AppendInt(append(b, ','), h.Amount, 10)
	}
	return string(b)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, '-')
	}
	return strconv.AppendInt(b, t.UnixNano(), 10)
}

// ErrBadReservation wraps every reason a reservation's text is rejected.
var ErrBadReservation = errors.New("bad reservation text")

// UnmarshalReservation decodes what Text wrote. Budgets are matched
// by name against l's; one l no longer has (a reload removed it) is settled
// with the unit and currency the text names. "" decodes to an empty
// reservation, which settles nothing.
func (l *Limiter) UnmarshalReservation(text string) (*Reservation, error) {
	if text == "" {
		return &Reservation{}, nil
	}
	f := strings.Split(text, " ")
	if len(f) < 4 || f[0] != handoffVersion {
		return nil, fmt.Errorf("%w: want %q and at least 3 fields", ErrBadReservation, handoffVersion)
	}
	id, err := url.QueryUnescape(f[1])
	if err != nil || id == "" {
		return nil, fmt.Errorf("%w: lease id %q", ErrBadReservation, f[1])
	}
	r := &Reservation{lease: Lease{ID: id}}
	if r.lease.Expires, err = parseTime(f[2]); err != nil {
		return nil, fmt.Errorf("%w: lease expiry: %w", ErrBadReservation, err)
	}
	if r.at, err = parseTime(f[3]); err != nil {
		return nil, fmt.Errorf("%w: admission time: %w", ErrBadReservation, err)
	}
	holds := f[4:]
	if len(holds) > maxHandoffHolds {
		return nil, fmt.Errorf("%w: %d holds, at most %d", ErrBadReservation, len(holds), maxHandoffHolds)
	}
	r.holds = make([]Hold, 0, len(holds))
	r.budgets = make([]*Budget, 0, len(holds))
	for i, s := range holds {
		h, b, err := l.parseHold(s)
		if err != nil {
			return nil, fmt.Errorf("%w: hold %d: %w", ErrBadReservation, i+1, err)
		}
		r.holds = append(r.holds, h)
		r.budgets = append(r.budgets, b)
	}
	return r, nil
}

// maxHandoffHolds bounds what a text may make us allocate: far more budgets
// than any configuration matches on one request.
const maxHandoffHolds = 1024

func (l *Limiter) parseHold(s string) (Hold, *Budget, error) {
	p := strings.Split(s, ",")
	if len(p) != 9 {
		return Hold{}, nil, fmt.Errorf("%d fields, want 9", len(p))
	}
	var str [3]string
	for i, at := range [3]int{0, 1, 3} { // budget, key, currency
		v, err := url.QueryUnescape(p[at])
		if err != nil {
			return Hold{}, nil, fmt.Errorf("field %d: %w", at+1, err)
		}
		str[i] = v
	}
	name, key, cur := str[0], str[1], money.Currency(str[2])
	unit, err := strconv.ParseUint(p[2], 10, 8)
	if err != nil || Unit(unit) > Concurrent {
		return Hold{}, nil, fmt.Errorf("unit %q", p[2])
	}
	var ts [3]time.Time
	for i := range ts {
		if ts[i], err = parseTime(p[4+i]); err != nil {
			return Hold{}, nil, fmt.Errorf("time %d: %w", i+1, err)
		}
	}
	limit, err1 := strconv.ParseInt(p[7], 10, 64)
	amount, err2 := strconv.ParseInt(p[8], 10, 64)
	if err := errors.Join(err1, err2); err != nil || amount < 0 {
		return Hold{}, nil, fmt.Errorf("limit %q, amount %q", p[7], p[8])
	}
	h := Hold{ID: CounterID{Budget: name, Key: key, Start: ts[0]}, Since: ts[1], End: ts[2], Limit: limit, Amount: amount}
	b, ok := l.byName[name]
	if !ok || b.Unit != Unit(unit) || b.Currency != cur {
		// Not (or no longer) configured as it was at admission: settle as
		// admitted, in the unit and currency of the hold.
		b = &Budget{Name: name, Unit: Unit(unit), Currency: cur, Limit: limit}
	}
	return h, b, nil
}

func parseTime(s string) (time.Time, error) {
	if s == "-" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, n).UTC(), nil
}
