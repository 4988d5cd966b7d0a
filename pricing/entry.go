package pricing

import (
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/internal/yamlwalk"
)

// Entry is the price of one model, possibly through one provider, from one
// instant on: one version of the model's prices (see Catalog.Lookup).
// Entries are shared by every caller of Lookup: treat them as read-only.
type Entry struct {
	// Name is the model name as written in the catalog; matching ignores case.
	Name string
	// Provider qualifies the entry (lower-cased); empty matches any provider
	// that has no entry of its own.
	Provider string
	// Aliases are further exact names, as written.
	Aliases []string
	// Match are the entry's globs, as written (see Catalog.Lookup).
	Match []string
	// Source is where the prices were read, usually a URL; never empty.
	Source string
	// AsOf is the date the prices were read, at midnight UTC.
	AsOf time.Time
	// EffectiveFrom is the instant, in UTC, from which the entry prices
	// requests that start at or after it. Zero means from the beginning of
	// time: the entry was written without effective_from.
	EffectiveFrom time.Time
	// Prices are per million tokens of each class, in the catalog currency,
	// with omitted classes already defaulted (reasoning to output, cache
	// classes to input).
	Prices [usage.NumClasses]money.PerMillion
	// Has says which classes have a price, written or defaulted. Audio and
	// image classes are never defaulted from text prices (they cost many
	// times more), so usage in a class without a price cannot be priced.
	Has [usage.NumClasses]bool
	// Units are the per-unit prices (requests, audio seconds, characters,
	// images).
	Units UnitPrices
	// ContextTiers replace the prices of a request whose prompt passes a
	// threshold, in ascending order of threshold.
	ContextTiers []ContextTier
	// ServiceTiers are the prices of the batch, flex and priority tiers, in
	// that order, those the entry lists only.
	ServiceTiers []ServiceTier
	// File and Line locate the entry in the catalog it came from.
	File string
	Line int

	written  [usage.NumClasses]bool // classes priced in the file; the others follow defaultSource
	keys     []entryKey             // index keys of the name and aliases, for duplicate reports
	globKeys []entryKey             // index keys of the globs
	from     entryKey               // where effective_from is written; zero when absent
	fromBad  bool                   // effective_from is written but invalid
}

// UnitPrices are per-unit prices in the catalog currency. Usage of a unit the
// entry has no price for is unpriced (ErrNoPrice).
type UnitPrices struct {
	// Request is charged once by every call of Entry.Cost; zero when not
	// listed.
	Request money.Amount
	// AudioSecond prices usage.AudioMillis, rounded up to whole seconds per
	// request (as OpenAI bills whisper). Meaningful when HasAudioSecond.
	AudioSecond    money.Amount
	HasAudioSecond bool
	// Characters1k prices usage.Characters per thousand, exactly:
	// characters × price / 1000, rounded once with the rest of the request.
	// Meaningful when HasCharacters1k.
	Characters1k    money.Amount
	HasCharacters1k bool
	// Image prices usage.Images by lower-cased "size/quality", "size" or
	// "default", tried in that order; nil when the entry lists none.
	Image map[string]money.Amount
}

// ContextTier is the price list of requests whose prompt is longer than
// AboveInputTokens (see Entry.Cost for what counts as prompt).
type ContextTier struct {
	AboveInputTokens int64
	// Prices and Has are the whole list in force above the threshold: the
	// classes the tier lists, the base price for the others, except that a
	// class the file never prices follows its default source (reasoning
	// follows output, cache classes follow input) at the tier's price, so an
	// unwritten class is never billed below the class it defaults to.
	Prices  [usage.NumClasses]money.PerMillion
	Has     [usage.NumClasses]bool
	written [usage.NumClasses]bool
}

// ServiceTier is the price of one service tier: a multiplier on every token
// and unit price, or explicit token prices.
type ServiceTier struct {
	// Name is batch, flex or priority.
	Name string
	// Multiplier scales every token and unit price, as a decimal factor held
	// in an Amount: 0.5 is money.MustParse("0.5"). It is 1 (money.Scale) for
	// a tier with explicit prices.
	Multiplier money.Amount
	// Prices are the tier's explicit prices, as written; Set says which
	// classes it lists. Unlisted classes keep the price they have without
	// the tier (after any context tier), except that a class the file never
	// prices follows its default source, as in ContextTier.
	Prices [usage.NumClasses]money.PerMillion
	Set    [usage.NumClasses]bool
	// lists are the resolved prices per context level: [0] without a context
	// tier, [i+1] in ContextTiers[i]. Nil for a multiplier tier.
	lists []priceList
}

// entryKey is one name, alias or glob of an entry and where it is written.
type entryKey struct {
	key   string // index key: lower(provider) "\x00" lower(name)
	value string // as written
	path  string // e.g. models[3].aliases[0]
	line  int
}

// entry decodes models[i]. It returns nil when the entry has no usable name
// or provider; an entry with other problems is still returned, so that its
// names take part in the duplicate check, and the load fails anyway.
func (d *decoder) entry(n *yaml.Node, path string) *Entry {
	fs, ok := d.Fields(n, path, entryKeys)
	if !ok {
		return nil
	}
	e := &Entry{File: d.File, Line: n.Line}
	if v := d.required(fs, n, path, "source", "the URL or document the prices were read from"); v != nil {
		e.Source = d.text(v, path+".source", "the URL or document the prices were read from")
	}
	if v := d.required(fs, n, path, "as_of", "the date the prices were read, as YYYY-MM-DD"); v != nil {
		e.AsOf = d.date(v, path+".as_of")
	}
	if v := fs["effective_from"]; v != nil {
		var ok bool
		e.EffectiveFrom, ok = d.instant(v, path+".effective_from")
		e.from, e.fromBad = entryKey{value: v.Value, path: path + ".effective_from", line: v.Line}, !ok
	}
	if v := d.required(fs, n, path, "prices", "input and output prices per million tokens"); v != nil {
		base := d.basePrices(v, path+".prices")
		e.Prices, e.Has, e.written = base.prices, base.has, base.written
	}
	if v := fs["units"]; v != nil {
		d.units(v, path+".units", &e.Units)
	}
	if v := fs["context_tiers"]; v != nil {
		e.ContextTiers = d.contextTiers(v, path+".context_tiers", e.base())
	}
	if v := fs["service_tiers"]; v != nil {
		e.ServiceTiers = d.serviceTiers(v, path+".service_tiers", e.levels())
	}
	if !d.names(fs, n, path, e) {
		return nil
	}
	return e
}

// names decodes name, provider, aliases and match into e and its index keys.
// It reports false when the entry has no usable name or provider.
func (d *decoder) names(fs map[string]*yaml.Node, n *yaml.Node, path string, e *Entry) bool {
	nameNode := d.required(fs, n, path, "name", "the model name")
	if nameNode == nil {
		return false
	}
	e.Name = d.name(nameNode, path+".name", "a model name")
	if v := fs["provider"]; v != nil {
		e.Provider = lowerASCII(d.name(v, path+".provider", "a provider name"))
		if e.Provider == "" {
			return false
		}
	}
	if e.Name == "" {
		return false
	}
	prefix := e.Provider + "\x00"
	e.keys = append(e.keys, entryKey{key: prefix + lowerASCII(e.Name), value: e.Name, path: path + ".name", line: nameNode.Line})
	if v := fs["aliases"]; v != nil {
		d.Sequence(v, path+".aliases", "a list of model names", func(a *yaml.Node, ap string) {
			if alias := d.name(a, ap, "a model name"); alias != "" {
				e.Aliases = append(e.Aliases, alias)
				e.keys = append(e.keys, entryKey{key: prefix + lowerASCII(alias), value: alias, path: ap, line: a.Line})
			}
		})
	}
	if v := fs["match"]; v != nil {
		d.Sequence(v, path+".match", "a list of globs such as gpt-4o-*", func(g *yaml.Node, gp string) {
			if glob := d.glob(g, gp); glob != "" {
				e.Match = append(e.Match, glob)
				e.globKeys = append(e.globKeys, entryKey{key: prefix + lowerASCII(glob), value: glob, path: gp, line: g.Line})
			}
		})
	}
	return true
}

// required returns fs[key], or reports it missing from mapping n.
func (d *decoder) required(fs map[string]*yaml.Node, n *yaml.Node, path, key, what string) *yaml.Node {
	v := fs[key]
	if v == nil {
		d.Missing(n, yamlwalk.Join(path, key), what)
	}
	return v
}

// text returns a non-blank scalar, or "" after reporting it.
func (d *decoder) text(n *yaml.Node, key, what string) string {
	s, ok := d.Scalar(n, key, what)
	if ok && strings.TrimSpace(s) == "" {
		d.Fail(n, key, "empty; want "+what)
		return ""
	}
	return s
}

// name returns a model or provider name, or "" after reporting it. Control
// characters and spaces are refused: the index separates provider from name
// with a NUL, and no provider sends a model name with a space.
func (d *decoder) name(n *yaml.Node, key, what string) string {
	s := d.text(n, key, what)
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			d.Fail(n, key, "want "+what+" without spaces or control characters")
			return ""
		}
	}
	return s
}

func (d *decoder) date(n *yaml.Node, key string) time.Time {
	s, ok := d.Scalar(n, key, "a date as YYYY-MM-DD")
	if !ok {
		return time.Time{}
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		d.Fail(n, key, "want a date as YYYY-MM-DD")
	}
	return t
}

// instant reads an RFC 3339 instant. A date alone is refused, not taken as
// midnight UTC: a price change at midnight in California is eight hours of
// requests away from one at midnight UTC, and the file must say which.
func (d *decoder) instant(n *yaml.Node, key string) (time.Time, bool) {
	const what = "an RFC 3339 instant with a time zone, such as 2026-01-01T00:00:00Z"
	s, ok := d.Scalar(n, key, what)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		d.Fail(n, key, "want "+what)
		return time.Time{}, false
	}
	return t.UTC(), true
}

// Origin says where the price of class c comes from: written in the file
// (written true), or defaulted from another class (from, as in reasoning
// from output). ok is false when the entry has no price for c.
func (e *Entry) Origin(c usage.Class) (written bool, from usage.Class, ok bool) {
	if !e.Has[c] {
		return false, 0, false
	}
	if e.written[c] {
		return true, 0, true
	}
	from, _ = defaultSource(c)
	return false, from, true
}
