package litellm

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// DefaultSource is the source written for entries that name none of their own.
const DefaultSource = "litellm model_prices_and_context_window.json"

// ErrNoModels is returned when no entry of the file could be converted: the
// catalog would be empty, which the loader refuses.
var ErrNoModels = errors.New("no entry could be converted")

// Options control a conversion.
type Options struct {
	// AsOf is the date the prices were read, written as every entry's
	// as_of. Required: LiteLLM's file does not say when its prices were read.
	AsOf time.Time
	// SourceNote is appended, after a space, to DefaultSource for entries
	// without a source of their own: the URL or commit the file came from.
	SourceNote string
}

// Convert reads LiteLLM's model_prices_and_context_window.json from r and
// returns the equivalent catalog (YAML, schema v2), and a report of every
// entry and field it left out and why. It fails only when the input is not
// a JSON object, when opts.AsOf is zero, or when nothing could be converted;
// the report is filled as far as the conversion went.
func Convert(r io.Reader, opts Options) ([]byte, Report, error) {
	if opts.AsOf.IsZero() {
		return nil, Report{}, errors.New("litellm: Options.AsOf is required: the date the prices were read")
	}
	c := &converter{opts: opts, source: DefaultSource, tally: tally{}, models: map[string]*model{}}
	if opts.SourceNote != "" {
		c.source += " " + opts.SourceNote
	}
	err := c.read(r)
	c.mergeVariants() // even after a read error, so that the report accounts for every entry read
	rep := c.finish()
	if err != nil {
		return nil, rep, fmt.Errorf("litellm: %w", err)
	}
	if len(c.order) == 0 {
		return nil, rep, fmt.Errorf("litellm: %w", ErrNoModels)
	}
	out, err := c.encode()
	if err != nil {
		return nil, rep, fmt.Errorf("litellm: %w", err)
	}
	return out, rep, nil
}

// Load converts the LiteLLM file at path, so that a config can name it as a
// catalog source and hand the result to pricing.Parse. A zero asOf means the
// file's modification date (UTC): the day the file was fetched is the best
// answer to "when were these prices read" that the file itself can give.
func Load(path string, asOf time.Time) ([]byte, Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Report{}, fmt.Errorf("litellm: %w", err)
	}
	defer f.Close()
	if asOf.IsZero() {
		st, err := f.Stat()
		if err != nil {
			return nil, Report{}, fmt.Errorf("litellm: %w", err)
		}
		asOf = st.ModTime().UTC()
	}
	out, rep, err := Convert(f, Options{AsOf: asOf})
	if err != nil {
		return nil, rep, fmt.Errorf("%s: %w", path, err)
	}
	return out, rep, nil
}

// converter holds the state of one conversion.
type converter struct {
	opts     Options
	source   string
	report   Report
	tally    tally
	models   map[string]*model // by modelKey
	order    []*model
	variants []pending
}

// pending is an image size/quality entry, merged once every model is known.
type pending struct {
	e        *entry
	v        variant
	provider string
	mode     string
}

// read walks the top-level object entry by entry, keeping the file's order
// (the first of two duplicates wins) and decoding numbers as json.Number so
// that no cost passes through float64.
func (c *converter) read(r io.Reader) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if t, err := dec.Token(); err != nil {
		return fmt.Errorf("reading JSON: %w", err)
	} else if t != json.Delim('{') {
		return errors.New("want a JSON object mapping model names to their prices")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("reading JSON: %w", err)
		}
		key, _ := t.(string) // inside an object, More and Token yield keys
		var v any
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("reading JSON entry %q: %w", key, err)
		}
		c.add(c.report.Read, key, v)
		c.report.Read++
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("reading JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("reading JSON: data after the top-level object")
	}
	return nil
}

// modelKey identifies a catalog entry as the catalog does: provider and
// name, ignoring ASCII case.
func modelKey(provider, name string) string {
	return strings.ToLower(provider) + "\x00" + strings.ToLower(name)
}

// add converts one top-level entry, or files it for mergeVariants.
func (c *converter) add(index int, key string, v any) {
	if key == "sample_spec" {
		c.skip(newEntry(index, key, nil), "LiteLLM's description of its own schema, not a model")
		return
	}
	raw, ok := v.(map[string]any)
	e := newEntry(index, key, raw)
	if !ok {
		c.skip(e, "want an object of prices, got "+describe(v))
		return
	}
	modeName, mode, ok := entryMode(e)
	if !ok {
		for _, f := range e.fields() {
			if !consumedFields[f] {
				e.left[f] = UnsupportedMode
			}
		}
		c.skip(e, fmt.Sprintf("mode %q bills something tokenmeter does not meter", modeName))
		return
	}
	provider, ok := entryProvider(e)
	if !ok {
		c.skip(e, "litellm_provider is not a provider name: "+describe(raw["litellm_provider"]))
		return
	}
	name := stripProvider(key, provider)
	if vr, ok := parseVariant(name); ok && mode.images {
		c.variants = append(c.variants, pending{e: e, v: vr, provider: provider, mode: modeName})
		return
	}
	if !validName(name) {
		c.skip(e, "the name has spaces or control characters, which the catalog refuses")
		return
	}
	m := c.newModel(e, name, provider)
	e.tokenPrices(m)
	e.unitPrices(m, mode)
	if why := e.complete(m, modeName, mode); why != "" {
		c.skip(e, why)
		return
	}
	c.keep(e, m)
}

func (c *converter) newModel(e *entry, name, provider string) *model {
	m := &model{key: e.key, name: name, provider: provider, source: c.source}
	if s, ok := e.raw["source"].(string); ok && strings.TrimSpace(s) != "" {
		m.source = strings.TrimSpace(s)
	}
	_, in := e.value("input_cost_per_token")
	_, out := e.value("output_cost_per_token")
	m.tokenPriced = in || out
	return m
}

// entryMode returns the entry's mode; an entry without one is a chat model,
// as LiteLLM assumes.
func entryMode(e *entry) (string, modeInfo, bool) {
	v, present := e.value("mode")
	if !present {
		return "chat", modes["chat"], true
	}
	s, isString := v.(string)
	if !isString {
		return describe(v), modeInfo{}, false
	}
	mode, ok := modes[s]
	return s, mode, ok
}

// entryProvider maps litellm_provider; an entry without one is written
// without a provider, which the catalog matches under any provider.
func entryProvider(e *entry) (string, bool) {
	v, present := e.value("litellm_provider")
	if !present {
		return "", true
	}
	s, ok := v.(string)
	if !ok || !validName(s) {
		return "", false
	}
	return mapProvider(s), true
}

// keep adds m unless an earlier entry has its provider and name.
func (c *converter) keep(e *entry, m *model) {
	k := modelKey(m.provider, m.name)
	if prev, dup := c.models[k]; dup {
		why := fmt.Sprintf("same provider %q and name %q as the earlier entry %q, which is kept", prev.provider, prev.name, prev.key)
		if !m.samePrices(prev) {
			why += "; their prices differ" // LiteLLM's file has such pairs; a reader should choose
		}
		c.skip(e, why)
		return
	}
	c.models[k] = m
	c.order = append(c.order, m)
	c.report.Models++
	c.commit(e, false)
}

// skip leaves the entry out, with why.
func (c *converter) skip(e *entry, why string) {
	e.problems = slices.Insert(e.problems, 0, Problem{Key: e.key, Message: why, index: e.index})
	c.report.Skipped++
	c.commit(e, true)
}

// commit counts the entry's fields that were not written, and files its problems.
func (c *converter) commit(e *entry, skipped bool) {
	for _, f := range e.fields() {
		switch r, left := e.left[f]; {
		case consumedFields[f]:
		case left:
			c.tally.add(f, r)
		case e.used[f]:
			if skipped {
				c.tally.add(f, EntrySkipped)
			}
		default:
			c.tally.add(f, NoCounterpart)
		}
	}
	for _, p := range e.problems {
		p.Skipped = skipped
		c.report.Problems = append(c.report.Problems, p)
	}
}

// mergeVariants writes each image size/quality entry as a units.image price
// of its model, creating the model when the file has no entry of its own for it.
func (c *converter) mergeVariants() {
	for _, p := range c.variants {
		e, v := p.e, p.v
		name := stripProvider(v.model, p.provider)
		switch {
		case v.steps:
			c.skip(e, "an image variant by step count; the schema prices images by size and quality")
			continue
		case !validName(name):
			c.skip(e, "the name has spaces or control characters, which the catalog refuses")
			continue
		}
		m := c.models[modelKey(p.provider, name)]
		if m != nil && m.images[v.imageKey()] != "" {
			c.skip(e, fmt.Sprintf("duplicate of an earlier price for %s images of %s; the first is kept", v.imageKey(), m.name))
			continue
		}
		tokenPriced := m != nil && m.tokenPriced
		price, ok := e.imagePrice(tokenPriced, true, &v)
		switch {
		case tokenPriced:
			c.skip(e, fmt.Sprintf("model %s is priced by tokens; LiteLLM ignores its per-image prices", m.name))
		case !ok:
			c.skip(e, "no usable per-image price")
		case m == nil:
			m = c.newModel(e, name, p.provider)
			m.tokenPriced = false // a variant's own token fields are not written
			m.images = map[string]string{v.imageKey(): price}
			e.complete(m, p.mode, modeInfo{images: true})
			c.keep(e, m)
		default:
			if m.images == nil {
				m.images = map[string]string{}
			}
			m.images[v.imageKey()] = price
			c.report.Merged++
			c.commit(e, false)
		}
	}
}

// finish sorts what the report has gathered.
func (c *converter) finish() Report {
	r := c.report
	r.Problems = slices.Clone(r.Problems)
	slices.SortStableFunc(r.Problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.index, b.index), cmp.Compare(a.Field, b.Field))
	})
	r.Fields = c.tally.sorted()
	return r
}
