package pricing

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
	"github.com/tokenmeter/tokenmeter/internal/money"
)

// ErrNegativeCount is returned by Entry.Cost for a usage with a negative
// token or unit count, which no provider reports and which would hide real
// spend.
var ErrNegativeCount = errors.New("negative token count")

// ErrNoPrice is returned by Entry.Cost for usage the entry has no price for:
// an audio or image class it does not list, or a unit (images, audio
// seconds, characters) without a unit price, or images of a size and quality
// that neither a "SIZE/QUALITY", a "SIZE" nor a "default" image price
// covers. The request is then unpriced, never charged at a guessed rate.
var ErrNoPrice = errors.New("no price for this usage")

// ErrUnknownServiceTier flags a request served at a service tier the entry
// does not price. It is the one error of Entry.Cost that comes with a usable
// amount: the request priced at the base prices (see CostOptions).
var ErrUnknownServiceTier = errors.New("service tier not in the catalog; priced at base prices")

// Catalog is a loaded set of prices in one currency. It is immutable after
// Parse or Load and safe for concurrent use; a reload builds a new one.
type Catalog struct {
	currency money.Currency
	entries  []*Entry
	// index maps lower(provider) + "\x00" + lower(name or alias) to the
	// versions of the model it names; unqualified entries have an empty
	// provider. Names never hold a control character,
	// so the separator cannot be forged by a name.
	index map[string]versions
	// globs maps lower(provider) + "\x00" + a literal prefix to the globs
	// with that prefix; globLens are the prefix lengths in use, longest
	// first, so that Lookup tries the longest literal prefix first.
	globs    map[string][]*glob
	globLens []int
}

// Currency is the currency of every price in the catalog.
func (c *Catalog) Currency() money.Currency { return c.currency }

// Len is the number of entries: every effective version counts, aliases
// and globs do not.
func (c *Catalog) Len() int { return len(c.entries) }

// Parse reads one catalog from data; file names it in errors. Every problem
// is reported, as a cfgerr.List.
func Parse(file string, data []byte) (*Catalog, error) {
	var errs cfgerr.List
	f := decodeFile(file, data, &errs)
	c := compile([]*catalogFile{f}, &errs)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// Load reads catalogs in order. The entries of a later file replace every
// entry (every effective version) of an earlier one with the same provider
// and name, aliases and globs and all; other entries add to the catalog.
// Every file must be in the same currency.
func Load(paths ...string) (*Catalog, error) {
	srcs := make([]Source, 0, len(paths))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("pricing: %w", err)
		}
		srcs = append(srcs, Source{Name: p, Data: data})
	}
	return LoadSources(srcs...)
}

// Source is one catalog's YAML and the name errors give it (a path, or a
// path and what it was converted from).
type Source struct {
	Name string
	Data []byte
}

// LoadSources is Load over catalogs already in memory, such as ones
// converted from another format.
func LoadSources(srcs ...Source) (*Catalog, error) {
	if len(srcs) == 0 {
		return nil, errors.New("pricing: no catalog files given")
	}
	var errs cfgerr.List
	files := make([]*catalogFile, 0, len(srcs))
	for _, s := range srcs {
		files = append(files, decodeFile(s.Name, s.Data, &errs))
	}
	c := compile(files, &errs)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// compile checks that the files share a currency, applies overrides in file
// order and builds the indexes, reporting two versions of a model from one
// instant, a name, alias or glob of two models, and ambiguous globs.
func compile(files []*catalogFile, errs *cfgerr.List) *Catalog {
	first := files[0]
	for _, f := range files[1:] {
		// An invalid currency ("") is reported already, once.
		if f.currency != first.currency && f.currency != "" && first.currency != "" {
			errs.Add(currencyMismatch(f, first))
		}
	}
	var entries []*Entry
	for _, f := range files {
		// Only earlier files are overridden, every effective version of a
		// name at once: the later file owns that model's price history, so
		// an earlier file's dated version cannot outlive an override.
		// Entries of one name in the same file stay apart: they are
		// versions, or duplicates that the index reports.
		replaced := make(map[string]bool, len(f.entries))
		claimed := make(map[string]bool, len(f.entries))
		for _, e := range f.entries {
			replaced[e.keys[0].key] = true
			for _, k := range e.keys {
				claimed[k.key] = true
			}
		}
		kept := entries[:0]
		for _, e := range entries {
			if !replaced[e.keys[0].key] {
				kept = append(kept, withoutAliases(e, claimed))
			}
		}
		entries = append(kept, f.entries...)
	}
	c := &Catalog{currency: first.currency, entries: entries}
	index, byGlob, owners := buildIndex(entries, errs)
	c.index = index
	c.globs, c.globLens = buildGlobs(entries, byGlob, owners, errs)
	sortErrors(*errs, files)
	return c
}

// withoutAliases returns e without the aliases a later file names as its
// own models: the later file decides what that name costs (a user pricing
// gpt-5.1-codex apart from the built-in gpt-5.1 it aliases), and the rest
// of e stays as it was. e itself is never changed; it may be shared.
func withoutAliases(e *Entry, claimed map[string]bool) *Entry {
	drop := false
	for _, k := range e.keys[1:] {
		drop = drop || claimed[k.key]
	}
	if !drop {
		return e
	}
	c := *e
	c.keys = []entryKey{e.keys[0]}
	c.Aliases = nil
	for _, k := range e.keys[1:] {
		if !claimed[k.key] {
			c.keys = append(c.keys, k)
			c.Aliases = append(c.Aliases, k.value)
		}
	}
	return &c
}

// sortErrors puts errors in reading order, file by file and line by line,
// whichever pass found them.
func sortErrors(errs cfgerr.List, files []*catalogFile) {
	order := make(map[string]int, len(files))
	for i, f := range files {
		if _, ok := order[f.file]; !ok {
			order[f.file] = i
		}
	}
	slices.SortStableFunc(errs, func(a, b *cfgerr.Error) int {
		return cmp.Or(cmp.Compare(order[a.File], order[b.File]), cmp.Compare(a.Line, b.Line))
	})
}

func currencyMismatch(f, first *catalogFile) *cfgerr.Error {
	e := cfgerr.At(f.file, f.currencyNode, "currency", "")
	if f.currencyNode == nil {
		e.Reason = fmt.Sprintf("defaults to %s, which differs from %s in %s; all catalog files must share one currency",
			f.currency, first.currency, first.file)
	} else {
		e.Reason = fmt.Sprintf("differs from %s in %s; all catalog files must share one currency",
			first.currency, first.file)
	}
	return e
}
