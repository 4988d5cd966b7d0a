package pricing

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/tokenmeter/tokenmeter/cfgerr"
	"github.com/tokenmeter/tokenmeter/money"
	"github.com/tokenmeter/tokenmeter/usage"
)

// ErrNegativeCount is returned by Entry.Cost for a usage with a negative
// token count, which no provider reports and which would hide real spend.
var ErrNegativeCount = errors.New("negative token count")

// ErrNoPrice is returned by Entry.Cost for usage the entry has no price for:
// an audio or image class it does not list, or a non-token unit (images,
// audio seconds, characters; unit prices arrive with the full catalog). The
// request is then unpriced, never charged at a guessed rate.
var ErrNoPrice = errors.New("no price for this usage")

// Catalog is a loaded set of prices in one currency. It is immutable after
// Parse or Load and safe for concurrent use; a reload builds a new one.
type Catalog struct {
	currency money.Currency
	entries  []*Entry
	// index maps lower(provider) + "\x00" + lower(name or alias) to its
	// entry; unqualified entries have an empty provider. Names never hold a
	// control character, so the separator cannot be forged by a name.
	index map[string]*Entry
}

// Entry is the price of one model, possibly through one provider. Entries
// are shared by every caller of Lookup: treat them as read-only.
type Entry struct {
	// Name is the model name as written in the catalog; matching ignores case.
	Name string
	// Provider qualifies the entry (lower-cased); empty matches any provider
	// that has no entry of its own.
	Provider string
	// Aliases are further exact names, as written.
	Aliases []string
	// Source is where the prices were read, usually a URL; never empty.
	Source string
	// AsOf is the date the prices were read, at midnight UTC.
	AsOf time.Time
	// Prices are per million tokens of each class, in the catalog currency,
	// with omitted classes already defaulted (reasoning to output, cache
	// classes to input).
	Prices [usage.NumClasses]money.PerMillion
	// Has says which classes have a price, written or defaulted. Audio and
	// image classes are never defaulted from text prices (they cost many
	// times more), so usage in a class without a price cannot be priced.
	Has [usage.NumClasses]bool
	// File and Line locate the entry in the catalog it came from.
	File string
	Line int

	keys []entryKey // index keys of the name and aliases, for duplicate reports
}

// entryKey is one name or alias of an entry and where it is written.
type entryKey struct {
	key   string // index key
	value string // as written
	path  string // e.g. models[3].aliases[0]
	line  int
}

// Currency is the currency of every price in the catalog.
func (c *Catalog) Currency() money.Currency { return c.currency }

// Len is the number of entries (not counting aliases).
func (c *Catalog) Len() int { return len(c.entries) }

// Cost prices u at the entry's prices. The products of every class are
// summed exactly and rounded once, half up, to a nano-unit.
func (e *Entry) Cost(u *usage.Usage) (money.Amount, error) {
	if u == nil {
		return 0, fmt.Errorf("pricing %s: no usage", e.Name)
	}
	var s money.Sum
	for c, n := range u.Tokens {
		if n.N < 0 {
			return 0, fmt.Errorf("pricing %s: %s %d: %w", e.Name, usage.Class(c), n.N, ErrNegativeCount)
		}
		if n.N > 0 && !e.Has[c] {
			return 0, fmt.Errorf("pricing %s: %d %s tokens: %w", e.Name, n.N, usage.Class(c), ErrNoPrice)
		}
		s.Add(n.N, e.Prices[c])
	}
	for k, n := range u.Units {
		if n.N != 0 {
			return 0, fmt.Errorf("pricing %s: %d %s: %w", e.Name, n.N, usage.Unit(k), ErrNoPrice)
		}
	}
	a, err := s.Amount()
	if err != nil {
		return 0, fmt.Errorf("pricing %s: %w", e.Name, err)
	}
	return a, nil
}

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

// Load reads catalogs in order. An entry of a later file replaces the entry
// of an earlier one with the same provider and name, aliases and all; other
// entries add to the catalog. Every file must be in the same currency.
func Load(paths ...string) (*Catalog, error) {
	if len(paths) == 0 {
		return nil, errors.New("pricing: no catalog files given")
	}
	var errs cfgerr.List
	files := make([]*catalogFile, 0, len(paths))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("pricing: %w", err)
		}
		files = append(files, decodeFile(p, data, &errs))
	}
	c := compile(files, &errs)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// compile checks that the files share a currency, applies overrides in file
// order and builds the index, reporting any name claimed by two entries.
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
		// Only earlier files are overridden: two entries of one name in
		// the same file stay apart so that the index reports them.
		replaced := make(map[string]bool, len(f.entries))
		for _, e := range f.entries {
			replaced[e.keys[0].key] = true
		}
		kept := entries[:0]
		for _, e := range entries {
			if !replaced[e.keys[0].key] {
				kept = append(kept, e)
			}
		}
		entries = append(kept, f.entries...)
	}
	c := &Catalog{currency: first.currency, entries: entries, index: buildIndex(entries, errs)}
	sortErrors(*errs, files)
	return c
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

func buildIndex(entries []*Entry, errs *cfgerr.List) map[string]*Entry {
	n := 0
	for _, e := range entries {
		n += len(e.keys)
	}
	index := make(map[string]*Entry, n)
	for _, e := range entries {
		for _, k := range e.keys {
			if prev, dup := index[k.key]; dup {
				errs.Add(&cfgerr.Error{File: e.File, Line: k.line, Key: k.path, Value: k.value,
					Reason: duplicateReason(e, prev, k.key)})
				continue
			}
			index[k.key] = e
		}
	}
	return index
}

// duplicateReason names where prev, the entry that holds key first, wrote it.
func duplicateReason(e, prev *Entry, key string) string {
	line := prev.Line
	for _, k := range prev.keys {
		if k.key == key {
			line = k.line
			break
		}
	}
	where := fmt.Sprintf("line %d", line)
	if prev.File != e.File {
		where = fmt.Sprintf("%s:%d", prev.File, line)
	}
	if e.Provider != "" {
		return fmt.Sprintf("already defined for provider %q at %s", e.Provider, where)
	}
	return "already defined at " + where
}
