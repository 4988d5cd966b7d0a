package redisstore

import (
	"fmt"
	"math"
	"strconv"

	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// Script replies are type-checked: a reply of the wrong shape (another
// program's key under the prefix, a script of another version) is an error,
// never a panic.

type reserveStatus int64

// The first element of reserve.lua's reply.
const (
	reserveRefused   reserveStatus = 0
	reserveOK        reserveStatus = 1
	reserveDuplicate reserveStatus = 2
)

type reserveReply struct {
	status   reserveStatus
	refused  int // 0-based, within the group
	counters []ratelimit.Counter
}

// decodeReserve checks reserve.lua's reply for a group of n holds.
func decodeReserve(reply any, n int) (reserveReply, error) {
	v, err := ints(reply, 2)
	if err != nil {
		return reserveReply{}, err
	}
	r := reserveReply{status: reserveStatus(v[0])}
	counted := n
	switch r.status {
	case reserveOK:
	case reserveRefused:
		if v[1] < 1 || v[1] > int64(n) {
			return reserveReply{}, fmt.Errorf("script refused hold %d of %d", v[1], n)
		}
		r.refused = int(v[1]) - 1
		counted = int(v[1])
	case reserveDuplicate:
		return r, nil
	default:
		return reserveReply{}, fmt.Errorf("unknown script status %d", v[0])
	}
	if len(v) != 2+4*counted {
		return reserveReply{}, fmt.Errorf("script reply of %d integers for %d counters", len(v), counted)
	}
	r.counters = make([]ratelimit.Counter, counted)
	for i := range r.counters {
		c := v[2+4*i:]
		r.counters[i] = ratelimit.Counter{Spent: join(c[0], c[1]), Reserved: join(c[2], c[3])}
	}
	return r, nil
}

// ints checks that reply is an array of at least min integers.
func ints(reply any, min int) ([]int64, error) {
	arr, ok := reply.([]any)
	if !ok {
		return nil, fmt.Errorf("script reply is %T, want an array", reply)
	}
	if len(arr) < min {
		return nil, fmt.Errorf("script reply of %d elements, want at least %d", len(arr), min)
	}
	out := make([]int64, len(arr))
	for i, e := range arr {
		n, ok := e.(int64)
		if !ok {
			return nil, fmt.Errorf("script reply element %d is %T, want an integer", i, e)
		}
		out[i] = n
	}
	return out, nil
}

// decodeList checks list.lua's reply: (start, spent, reserved) triples of
// decimal strings.
func decodeList(reply any) ([][3]int64, error) {
	arr, ok := reply.([]any)
	if !ok || len(arr)%3 != 0 {
		return nil, fmt.Errorf("script reply is %T of %d, want string triples", reply, len(arr))
	}
	out := make([][3]int64, len(arr)/3)
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("script reply element %d is %T, want a string", i, e)
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("script reply element %d: %w", i, err)
		}
		out[i/3][i%3] = n
	}
	return out, nil
}

const base = 1_000_000_000

// join returns hi·10⁹ + lo (0 <= lo < 10⁹ from the scripts), saturated to
// the int64 range: a sum of buckets can pass it where no counter does.
func join(hi, lo int64) int64 {
	switch {
	case hi > math.MaxInt64/base:
		return math.MaxInt64
	case hi < math.MinInt64/base:
		return math.MinInt64
	}
	v := hi * base
	s := v + lo
	switch {
	case lo > 0 && s < v:
		return math.MaxInt64
	case lo < 0 && s > v:
		return math.MinInt64
	}
	return s
}
