package pricing

import (
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A glob in match has two wildcards: * matches any run of bytes, none
// included (slashes too: Bedrock and Fireworks names hold them), and ?
// exactly one byte. Matching ignores ASCII case, like exact names, and is
// against the whole model name as the request sends it.
//
// Precedence among globs of one provider qualification is the longest
// literal prefix (the text before the first wildcard). That is a total order
// on the globs matching any one name: their literal prefixes are all
// prefixes of that name, so one of two different lengths is the longer, and
// two of the same length are the same text. Two globs are therefore
// ambiguous exactly when they have the same literal prefix and some name
// matches both; loading rejects that (overlap decides it exactly), unless
// both belong to one model and so give the same answer, and accepts
// everything else. So gpt-4o-* beside gpt-4o-mini-* is fine and
// gpt-4o-mini-2024-07-18 goes to the latter, while gemini-*-pro* beside
// gemini-*-preview* is an error: gemini-2.5-pro-preview would match both
// with nothing to choose between them.

// glob reads one glob of a match list, or returns "" after reporting it.
func (d *decoder) glob(n *yaml.Node, key string) string {
	s := d.name(n, key, "a glob such as gpt-4o-*")
	if s == "" {
		return ""
	}
	if strings.ContainsAny(s, `[]{}\`) {
		d.Fail(n, key, `want a glob whose only wildcards are * and ?; [ ] { } and \ are not supported`)
		return ""
	}
	if !strings.ContainsAny(s, "*?") {
		d.Fail(n, key, "no * or ?; an exact name belongs in name or aliases")
		return ""
	}
	return s
}

// literalLen is the length of the literal prefix of glob.
func literalLen(glob string) int {
	if i := strings.IndexAny(glob, "*?"); i >= 0 {
		return i
	}
	return len(glob)
}

// wildMatch reports whether name matches the lower-cased glob. It
// backtracks to the last * only, which is enough for * and ? and keeps the
// cost at O(len(glob) × len(name)) in the worst case, without allocating.
func wildMatch(glob string, name []byte) bool {
	g, s := 0, 0
	star, mark := -1, 0
	for s < len(name) {
		switch {
		case g < len(glob) && glob[g] == '*':
			star, mark = g, s
			g++
		case g < len(glob) && (glob[g] == '?' || glob[g] == name[s]):
			g++
			s++
		case star >= 0:
			g, mark = star+1, mark+1
			s = mark
		default:
			return false
		}
	}
	for g < len(glob) && glob[g] == '*' {
		g++
	}
	return g == len(glob)
}

// overlap returns a name that both lower-cased globs match, if there is one.
// It explores the pairs (i, j) of positions in a and b reachable while
// spelling one name that both match: a * may match nothing (step past it)
// or one more byte (stay); any other pattern byte consumes one byte that
// both sides must accept. The name exists when (len(a), len(b)) is reached.
// There are at most (len(a)+1)(len(b)+1) states, each visited once, and
// this runs at load only, after a linear test has set aside the common case
// of globs whose literal ends differ.
func overlap(a, b string) (string, bool) {
	if !endsAgree(a, b) {
		return "", false
	}
	w := len(b) + 1
	end := len(a)*w + len(b)
	// from[s] is 1 + the state s was reached from (0: not reached), and
	// spelt[s] the byte spelt on the way (0 for a step past a *).
	from := make([]int32, (len(a)+1)*w)
	spelt := make([]byte, len(from))
	from[0] = 1 // the start, reached from itself
	queue := []int{0}
	visit := func(s, to int, c byte) {
		if from[to] == 0 {
			from[to], spelt[to] = int32(s)+1, c
			queue = append(queue, to)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if s == end {
			return spell(from, spelt, end), true
		}
		i, j := s/w, s%w
		if i < len(a) && a[i] == '*' {
			visit(s, s+w, 0)
		}
		if j < len(b) && b[j] == '*' {
			visit(s, s+1, 0)
		}
		if i == len(a) || j == len(b) {
			continue
		}
		c, ok := common(a[i], b[j])
		if !ok {
			continue
		}
		next := s
		if a[i] != '*' {
			next += w
		}
		if b[j] != '*' {
			next++
		}
		// Two stars staying put spell a byte and change nothing.
		if next != s {
			visit(s, next, c)
		}
	}
	return "", false
}

// endsAgree is false when a and b cannot match one name because the
// literal text after their last wildcards differs: every name either
// matches ends with both, so the shorter must end the longer.
func endsAgree(a, b string) bool {
	ea, eb := a[strings.LastIndexAny(a, "*?")+1:], b[strings.LastIndexAny(b, "*?")+1:]
	return strings.HasSuffix(ea, eb) || strings.HasSuffix(eb, ea)
}

// common is a byte that pattern bytes x and y both accept.
func common(x, y byte) (byte, bool) {
	wx, wy := x == '*' || x == '?', y == '*' || y == '?'
	switch {
	case !wx && !wy:
		return x, x == y
	case !wx:
		return x, true
	case !wy:
		return y, true
	}
	return 'x', true // any byte; a letter keeps the example readable
}

// spell follows the states back from end to the start and returns the
// bytes spelt on the way, in order.
func spell(from []int32, spelt []byte, end int) string {
	var rev []byte
	for s := end; s != 0; s = int(from[s]) - 1 {
		if c := spelt[s]; c != 0 {
			rev = append(rev, c)
		}
	}
	slices.Reverse(rev)
	return string(rev)
}
