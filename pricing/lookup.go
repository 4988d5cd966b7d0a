package pricing

import (
	"slices"
	"time"
)

// keyBufSize covers provider + model names seen in practice (Bedrock ARNs
// included), so building a key stays on the stack; longer keys still work
// and allocate.
const keyBufSize = 192

// Lookup finds the entry pricing model when sent through provider, for a
// request that started at at. Both names are matched case-insensitively;
// provider may be empty. The order is:
//
//  1. the name or alias under provider, then under no provider;
//  2. the same two for a dated snapshot (gpt-4o-2024-08-06,
//     claude-3-5-sonnet-20241022) with its date removed;
//  3. the globs under provider, then under no provider, the longest literal
//     prefix first (see glob.go for why that never ties).
//
// Each step sees only the entries in force at at, which is when the request
// started. A name, alias or glob names a model (a provider qualification and
// name); of the model's versions, the entry with the latest effective_from
// not after at is in force, and an entry without effective_from is in force
// from the beginning of time. A model whose every version starts after at
// is absent, and the next step is tried. A miss returns (nil, false) and
// the request is unpriced: there is no fallback price.
//
// It does not allocate unless provider and model together pass 191 bytes.
func (c *Catalog) Lookup(provider, model string, at time.Time) (*Entry, bool) {
	var buf [keyBufSize]byte
	key := appendLower(buf[:0], provider)
	key = append(key, 0)
	key = appendLower(key, model)
	p := len(provider)
	if e := c.find(key, p, at); e != nil {
		return e, true
	}
	if n := dateSuffixLen(model); n > 0 {
		if e := c.find(key[:len(key)-n], p, at); e != nil {
			return e, true
		}
	}
	if len(c.globs) > 0 {
		if p > 0 {
			if e := c.matchGlob(key, p, at); e != nil {
				return e, true
			}
		}
		if e := c.matchGlob(key[p:], 0, at); e != nil {
			return e, true
		}
	}
	return nil, false
}

// find tries key, which is provider "\x00" model with the provider p bytes
// long, and then its unqualified suffix "\x00" model.
func (c *Catalog) find(key []byte, p int, at time.Time) *Entry {
	if p > 0 {
		if e := c.index[string(key)].at(at); e != nil {
			return e
		}
	}
	return c.index[string(key[p:])].at(at)
}

// matchGlob finds the glob of key's qualification (its first p bytes) with
// the longest literal prefix that matches key's model and has a version in
// force at at. The literal prefix is looked up by length, longest first, so
// a catalog of many globs costs a few map probes, not a scan of them all.
func (c *Catalog) matchGlob(key []byte, p int, at time.Time) *Entry {
	name := key[p+1:]
	for _, n := range c.globLens {
		if n > len(name) {
			continue
		}
		for _, g := range c.globs[string(key[:p+1+n])] {
			if wildMatch(g.pattern[n:], name[n:]) {
				if e := g.versions.at(at); e != nil {
					return e
				}
			}
		}
	}
	return nil
}

// appendLower appends s with ASCII upper-case letters lowered. Loading folds
// names the same way, so that both sides agree byte for byte without the
// allocations and Unicode tables of strings.ToLower.
func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// lowerASCII is appendLower for load time; it returns s itself when there is
// nothing to lower.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return string(appendLower(make([]byte, 0, len(s)), s))
		}
	}
	return s
}

// dateSuffixLen returns the length of a trailing "-YYYY-MM-DD" or
// "-YYYYMMDD" on model, or 0. The month and day must be plausible so that a
// version number such as "-12345678" is not taken for a date, and something
// must remain before the date.
func dateSuffixLen(model string) int {
	n := len(model)
	if n > 11 && model[n-11] == '-' && model[n-6] == '-' && model[n-3] == '-' &&
		digits(model[n-10:n-6]) && plausibleDate(model[n-5:n-3], model[n-2:]) {
		return 11
	}
	if n > 9 && model[n-9] == '-' && digits(model[n-8:n-4]) && plausibleDate(model[n-4:n-2], model[n-2:]) {
		return 9
	}
	return 0
}

func plausibleDate(mm, dd string) bool {
	if !digits(mm) || !digits(dd) {
		return false
	}
	m := (mm[0]-'0')*10 + mm[1] - '0'
	d := (dd[0]-'0')*10 + dd[1] - '0'
	return 1 <= m && m <= 12 && 1 <= d && d <= 31
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// makers are the providers that make the models they sell, tried first by
// LookupAnyProvider: without a provider, "gpt-4o-mini" means OpenAI's price,
// not Azure's resale of it.
var makers = []string{"openai", "anthropic", "google", "mistral", "deepseek", "cohere"}

// LookupAnyProvider finds model when the caller names no provider (the
// command line, a config's fallback model): unqualified entries first, then
// the model makers' entries (openai, anthropic, google, mistral, deepseek,
// cohere), then every other provider the catalog qualifies entries with, in
// name order.
func (c *Catalog) LookupAnyProvider(model string, at time.Time) (*Entry, bool) {
	if e, ok := c.Lookup("", model, at); ok {
		return e, true
	}
	var others []string
	for _, e := range c.entries {
		if e.Provider != "" && !slices.Contains(others, e.Provider) && !slices.Contains(makers, e.Provider) {
			others = append(others, e.Provider)
		}
	}
	slices.Sort(others)
	providers := append(slices.Clone(makers), others...)
	for _, p := range providers {
		if e, ok := c.Lookup(p, model, at); ok {
			return e, true
		}
	}
	return nil, false
}
