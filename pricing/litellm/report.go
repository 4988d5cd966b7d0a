package litellm

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Reason says why a LiteLLM field was not written to the catalog.
type Reason string

// The reasons.
const (
	// NoCounterpart: the schema has nothing the field could become
	// (supports_*, max_*, deprecation_date, per-video-second prices, ...).
	NoCounterpart Reason = "no counterpart"
	// NotExact: the price has more than 9 decimal places in the catalog's
	// unit; it is left out rather than rounded.
	NotExact Reason = "not exact"
	// Invalid: not a non-negative JSON number, or out of range.
	Invalid Reason = "invalid"
	// Superseded: LiteLLM bills another field of the entry instead (for
	// example output_cost_per_second over input_cost_per_second).
	Superseded Reason = "superseded"
	// UnsupportedMode: the entry's mode bills something tokenmeter does not
	// meter, so the whole entry was skipped.
	UnsupportedMode Reason = "unsupported mode"
	// EntrySkipped: the field could have been written, but its entry was
	// skipped for another reason (listed among the entry problems).
	EntrySkipped Reason = "entry skipped"
)

// Report says what a conversion wrote and, for everything it did not write,
// why. Entries read = Models + Merged + Skipped.
type Report struct {
	// Read is the number of top-level entries in the file, sample_spec included.
	Read int
	// Models is the number of catalog models written.
	Models int
	// Merged is the number of image size/quality entries written as
	// units.image prices of another model.
	Merged int
	// Skipped is the number of entries left out whole.
	Skipped int
	// Problems lists, in file order, each skipped entry (with the field
	// problems that explain it), and for written entries: each price left
	// out as NotExact or Invalid, each price rounded from float noise, each
	// superseded price that differed from the one used, and token prices
	// written as 0. Fields without a counterpart are only counted, in Fields.
	Problems []Problem
	// Fields counts, per field name and reason, the entries whose field was
	// not written. Sorted by field, then reason.
	Fields []FieldCount
}

// Problem is one entry's problem.
type Problem struct {
	Key     string // the entry's key in the LiteLLM file
	Field   string // the field concerned; "" for the entry as a whole
	Skipped bool   // whether the entry was left out
	Message string
	index   int // the entry's position in the file, for ordering
}

// FieldCount is how many entries had Field left out for Reason.
type FieldCount struct {
	Field   string
	Reason  Reason
	Entries int
}

// String renders the report for a terminal: a summary line, the problems
// (skipped entries first), then the table of fields left out.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "litellm import: %d entries read: %d models written, %d image variants merged, %d entries skipped\n",
		r.Read, r.Models, r.Merged, r.Skipped)
	section := func(title string, skipped bool) {
		first := true
		for _, p := range r.Problems {
			if p.Skipped != skipped {
				continue
			}
			if first {
				fmt.Fprintf(&b, "\n%s:\n", title)
				first = false
			}
			if p.Field != "" {
				fmt.Fprintf(&b, "  %s: %s: %s\n", p.Key, p.Field, p.Message)
			} else {
				fmt.Fprintf(&b, "  %s: %s\n", p.Key, p.Message)
			}
		}
	}
	section("skipped entries", true)
	section("written with problems", false)
	if len(r.Fields) > 0 {
		b.WriteString("\nfields not written (field, entries, reason):\n")
		width := 0
		for _, f := range r.Fields {
			width = max(width, len(f.Field))
		}
		for _, f := range r.Fields {
			fmt.Fprintf(&b, "  %-*s %5d  %s\n", width, f.Field, f.Entries, f.Reason)
		}
	}
	return b.String()
}

// tally accumulates field counts while entries are converted.
type tally map[FieldCount]int

func (t tally) add(field string, r Reason) { t[FieldCount{Field: field, Reason: r}]++ }

func (t tally) sorted() []FieldCount {
	out := make([]FieldCount, 0, len(t))
	for k, n := range t {
		k.Entries = n
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b FieldCount) int {
		return cmp.Or(cmp.Compare(a.Field, b.Field), cmp.Compare(a.Reason, b.Reason))
	})
	return out
}
