package redisstore

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// sep separates budget and key in a family's hash tag. Control bytes in
// names are escaped, so it cannot occur in either.
const sep = "\x1f"

// family is the keys of one budget key's counters: counters, leases, lease
// expiries. They share a hash tag, so a script may use them together in
// Redis Cluster.
type family struct {
	keys [3]string
	slot int
}

func (s *Store) base(budget, key string) (base, tag string) {
	tag = escape(budget) + sep + escape(key)
	return s.prefix + ":{" + tag + "}:", tag
}

func (s *Store) family(budget, key string) family {
	base, tag := s.base(budget, key)
	return family{keys: [3]string{base + "c", base + "l", base + "x"}, slot: slot(tag)}
}

// parseCounters returns the budget and key of a counters key, and the
// family's keys.
func (s *Store) parseCounters(k string) (budget, key string, f family, err error) {
	head := s.prefix + ":{"
	tag, ok := strings.CutPrefix(k, head)
	if ok {
		tag, ok = strings.CutSuffix(tag, "}:c")
	}
	var b, kk string
	if ok {
		b, kk, ok = strings.Cut(tag, sep)
	}
	if ok {
		if budget, err = url.PathUnescape(b); err == nil {
			key, err = url.PathUnescape(kk)
		}
	}
	if !ok || err != nil {
		return "", "", family{}, fmt.Errorf("malformed counters key %q", k)
	}
	return budget, key, s.family(budget, key), nil
}

// escaped are the bytes escaped in names: '%' itself, the hash tag's braces,
// SCAN's glob metacharacters and control bytes.
func escaped(c byte) bool {
	return c < 0x20 || c == 0x7f || strings.IndexByte("%{}*?[]\\", c) >= 0
}

// escape percent-escapes a budget name or key for a Redis key.
func escape(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if escaped(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		if c := s[i]; escaped(c) {
			b.Write([]byte{'%', hex[c>>4], hex[c&15]})
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// globEscape quotes SCAN MATCH's metacharacters in a literal.
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte("*?[]\\", s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// slot is Redis Cluster's hash slot of a hash tag: CRC16/XMODEM mod 16384
// (Redis Cluster specification, "Keys distribution model").
func slot(tag string) int {
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) & 16383
}

// plan is how one Reserve or Settle runs: its families, and the groups of
// families one script can cover (one group on a single server; one per hash
// slot, in ascending slot order, in Cluster).
type plan struct {
	fams  []family
	famOf []int // hold → family
	pos   []int // family → its 1-based place in its group's KEYS
	holds [][]int
	keys  [][]string
	slots []int
}

func (s *Store) plan(holds []ratelimit.Hold) *plan {
	p := &plan{famOf: make([]int, len(holds))}
	seen := make(map[[2]string]int, len(holds))
	for i := range holds {
		id := [2]string{holds[i].ID.Budget, holds[i].ID.Key}
		f, ok := seen[id]
		if !ok {
			f = len(p.fams)
			seen[id] = f
			p.fams = append(p.fams, s.family(id[0], id[1]))
		}
		p.famOf[i] = f
	}
	order := make([]int, len(p.fams)) // families in group order
	for f := range order {
		order[f] = f
	}
	if s.cluster != nil {
		slices.SortStableFunc(order, func(a, b int) int { return p.fams[a].slot - p.fams[b].slot })
	}
	group := make([]int, len(p.fams))
	p.pos = make([]int, len(p.fams))
	for j, f := range order {
		if j == 0 || s.cluster != nil && p.fams[f].slot != p.fams[order[j-1]].slot {
			p.keys = append(p.keys, nil)
			p.holds = append(p.holds, nil)
			p.slots = append(p.slots, p.fams[f].slot)
		}
		g := len(p.keys) - 1
		group[f] = g
		p.keys[g] = append(p.keys[g], p.fams[f].keys[:]...)
		p.pos[f] = len(p.keys[g]) / 3
	}
	for i, f := range p.famOf {
		p.holds[group[f]] = append(p.holds[group[f]], i)
	}
	return p
}

// group returns group g's hold indices (ascending) and keys.
func (p *plan) group(g int) (holds []int, keys []string) { return p.holds[g], p.keys[g] }

// before returns the hold indices of the groups before g.
func (p *plan) before(g int) []int {
	var out []int
	for _, h := range p.holds[:g] {
		out = append(out, h...)
	}
	return out
}

// groupCount is the number of groups.
func (p *plan) groupCount() int { return len(p.keys) }
