package pricing

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
)

// versions are the entries of one model, oldest effective_from first; an
// entry without one sorts first.
type versions []*Entry

// at returns the version in force at t: the latest whose effective_from is
// not after t. Nil when every version starts after t.
func (v versions) at(t time.Time) *Entry {
	// Newest first: requests are priced at about now, so the newest
	// version is the usual answer.
	for i := len(v) - 1; i >= 0; i-- {
		if f := v[i].EffectiveFrom; f.IsZero() || !f.After(t) {
			return v[i]
		}
	}
	return nil
}

// compareFrom orders effective_from instants, absence (the beginning of
// time) first. Instants compare as instants: 01:00+01:00 equals 00:00Z.
func compareFrom(a, b time.Time) int {
	switch {
	case a.IsZero() && b.IsZero():
		return 0
	case a.IsZero():
		return -1
	case b.IsZero():
		return 1
	}
	return a.Compare(b)
}

// A model is one provider qualification and name; its versions are the
// entries of that name, told apart by effective_from. Aliases and globs name
// the model, not one version: whichever version lists them, they resolve to
// the version in force, so a new price written as a new version needs only
// name, provider, effective_from and its prices to reach every alias and
// glob of the model. It follows that a name, alias or glob belongs to one
// model only.

// claim is the first model to write an index key, and where.
type claim struct {
	model string // the model's name key
	entry *Entry
	at    entryKey
}

// buildIndex returns the name and alias index and, keyed the same way, the
// globs, each mapped to its model's versions. It reports two versions of a
// model from one instant, and a key claimed by two models or twice by one
// entry.
func buildIndex(entries []*Entry, errs *cfgerr.List) (index, byGlob map[string]versions, globOwner map[string]claim) {
	models := make(map[string]versions, len(entries))
	for _, e := range entries {
		mk := e.keys[0].key
		vs := models[mk]
		i, found := slices.BinarySearchFunc(vs, e, func(a, b *Entry) int {
			return compareFrom(a.EffectiveFrom, b.EffectiveFrom)
		})
		if found {
			// An effective_from that did not parse is reported already;
			// it reads as absent, which says nothing about duplicates.
			if !e.fromBad && !vs[i].fromBad {
				errs.Add(sameInstant(e, vs[i]))
			}
			continue
		}
		models[mk] = slices.Insert(vs, i, e)
	}
	names := claimKeys(entries, models, func(e *Entry) []entryKey { return e.keys }, errs)
	globOwner = claimKeys(entries, models, func(e *Entry) []entryKey { return e.globKeys }, errs)
	index = make(map[string]versions, len(names))
	for k, c := range names {
		index[k] = models[c.model]
	}
	byGlob = make(map[string]versions, len(globOwner))
	for k, c := range globOwner {
		byGlob[k] = models[c.model]
	}
	return index, byGlob, globOwner
}

// claimKeys gives every key that keysOf lists to the first model, in
// reading order, to write it, and reports the keys that another model, or
// the same entry, writes again. Versions of one model may repeat them.
func claimKeys(entries []*Entry, models map[string]versions, keysOf func(*Entry) []entryKey, errs *cfgerr.List) map[string]claim {
	claims := make(map[string]claim)
	for _, e := range entries {
		mk := e.keys[0].key
		if !slices.Contains(models[mk], e) {
			continue // a duplicate version, reported already
		}
		for _, k := range keysOf(e) {
			c, ok := claims[k.key]
			switch {
			case !ok:
				claims[k.key] = claim{model: mk, entry: e, at: k}
			case c.model != mk || c.entry == e:
				errs.Add(&cfgerr.Error{File: e.File, Line: k.line, Key: k.path, Value: k.value,
					Reason: alreadyDefined(e, c.entry, c.at.line)})
			}
		}
	}
	return claims
}

// alreadyDefined says where prev wrote at line what e writes again.
func alreadyDefined(e, prev *Entry, line int) string {
	where := fmt.Sprintf("line %d", line)
	if prev.File != e.File {
		where = fmt.Sprintf("%s:%d", prev.File, line)
	}
	if e.Provider != "" {
		return fmt.Sprintf("already defined for provider %q at %s", e.Provider, where)
	}
	return "already defined at " + where
}

// sameInstant reports e, a second version of prev's model from the same
// instant (or, both without effective_from, a plain duplicate).
func sameInstant(e, prev *Entry) *cfgerr.Error {
	if e.EffectiveFrom.IsZero() {
		k := e.keys[0]
		return &cfgerr.Error{File: e.File, Line: k.line, Key: k.path, Value: k.value,
			Reason: alreadyDefined(e, prev, prev.keys[0].line)}
	}
	return &cfgerr.Error{File: e.File, Line: e.from.line, Key: e.from.path, Value: e.from.value,
		Reason: fmt.Sprintf("%s already has a version effective from this instant at line %d; "+
			"give each version its own effective_from", prev.Name, prev.from.line)}
}

// glob is one distinct glob of one provider qualification.
type glob struct {
	pattern  string // lower-cased, without the provider
	literal  int    // length of the literal prefix
	versions versions
	owner    claim // the model and where it wrote the glob first, for reports
}

// buildGlobs groups the globs of byGlob (keyed like the name index) by
// qualification and literal prefix, and reports every pair in a group that
// can match one name, unless both name the same model: longest-literal-
// prefix precedence cannot choose between them (see glob.go). entries give
// the reading order, which decides which glob of a pair is reported.
func buildGlobs(entries []*Entry, byGlob map[string]versions, owners map[string]claim, errs *cfgerr.List) (map[string][]*glob, []int) {
	if len(byGlob) == 0 {
		return nil, nil
	}
	pos := make(map[*Entry]int, len(entries))
	for i, e := range entries {
		pos[e] = i
	}
	groups := make(map[string][]*glob)
	var lens []int
	for key, vs := range byGlob {
		p := strings.IndexByte(key, 0)
		g := &glob{pattern: key[p+1:], literal: literalLen(key[p+1:]), versions: vs, owner: owners[key]}
		group := key[:p+1+g.literal]
		groups[group] = append(groups[group], g)
		if !slices.Contains(lens, g.literal) {
			lens = append(lens, g.literal)
		}
	}
	slices.SortFunc(lens, func(a, b int) int { return cmp.Compare(b, a) })
	for _, gs := range groups {
		// Reading order makes the reports, and which glob of a pair is
		// blamed, independent of map iteration.
		slices.SortFunc(gs, func(a, b *glob) int {
			return cmp.Or(cmp.Compare(pos[a.owner.entry], pos[b.owner.entry]), cmp.Compare(a.owner.at.line, b.owner.at.line))
		})
		for i, a := range gs {
			for _, b := range gs[i+1:] {
				if a.owner.model == b.owner.model {
					continue
				}
				if name, ok := overlap(a.pattern, b.pattern); ok {
					errs.Add(overlapError(b, a, name))
				}
			}
		}
	}
	return groups, lens
}

func overlapError(later, earlier *glob, name string) *cfgerr.Error {
	l, e := later.owner, earlier.owner
	where := fmt.Sprintf("line %d", e.at.line)
	if e.entry.File != l.entry.File {
		where = fmt.Sprintf("%s:%d", e.entry.File, e.at.line)
	}
	return &cfgerr.Error{File: l.entry.File, Line: l.at.line, Key: l.at.path, Value: l.at.value,
		Reason: fmt.Sprintf("can match the same names as %q at %s (such as %q) and has the same literal prefix %q, "+
			"so neither is more specific; lengthen one literal prefix or make them disjoint",
			e.at.value, where, name, later.pattern[:later.literal])}
}
