package litellm

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// priceSet holds one decimal text per class; "" is absent.
type priceSet [numClasses]string

func (p *priceSet) empty() bool { return *p == priceSet{} }

type contextTier struct {
	above  int64
	prices priceSet
}

// model is one catalog entry being built.
type model struct {
	key                    string // the LiteLLM key it was made from
	name, provider, source string
	prices                 priceSet
	units                  [numUnits]string // uImage is kept in images
	images                 map[string]string
	context                []contextTier // ascending
	service                [numTiers]priceSet
	// tokenPriced is set when the LiteLLM entry has input or output token
	// costs. LiteLLM then bills image generation by tokens and ignores its
	// per-image prices; writing both would charge twice.
	tokenPriced bool
}

func (m *model) set(f tokenField, price string) {
	switch {
	case f.above > 0:
		i, found := slices.BinarySearchFunc(m.context, f.above, func(t contextTier, n int64) int {
			return cmp.Compare(t.above, n)
		})
		if !found {
			m.context = slices.Insert(m.context, i, contextTier{above: f.above})
		}
		m.context[i].prices[f.class] = price
	case f.tier >= 0:
		m.service[f.tier][f.class] = price
	default:
		m.prices[f.class] = price
	}
}

// samePrices reports whether m and o would write the same prices.
func (m *model) samePrices(o *model) bool {
	return m.prices == o.prices && m.units == o.units && maps.Equal(m.images, o.images) &&
		slices.Equal(m.context, o.context) && m.service == o.service
}

// entry tracks what became of each field of one LiteLLM entry.
type entry struct {
	key      string
	index    int
	raw      map[string]any
	used     map[string]bool   // written to the catalog
	left     map[string]Reason // left out, and why
	problems []Problem
}

func newEntry(index int, key string, raw map[string]any) *entry {
	return &entry{key: key, index: index, raw: raw, used: map[string]bool{}, left: map[string]Reason{}}
}

// value returns a field's value; a JSON null counts as absent, as LiteLLM
// treats it.
func (e *entry) value(field string) (any, bool) {
	v, ok := e.raw[field]
	return v, ok && v != nil
}

// fields lists the entry's non-null fields in a fixed order.
func (e *entry) fields() []string {
	names := slices.Sorted(maps.Keys(e.raw))
	return slices.DeleteFunc(names, func(f string) bool { return e.raw[f] == nil })
}

func (e *entry) note(field, msg string) {
	e.problems = append(e.problems, Problem{Key: e.key, Field: field, Message: msg, index: e.index})
}

func (e *entry) leave(field string, r Reason, msg string) {
	e.left[field] = r
	if msg != "" {
		e.note(field, msg)
	}
}

// fail records a field whose value could not be converted.
func (e *entry) fail(field string, err error) {
	r := Invalid
	if errors.Is(err, errNotExact) {
		r = NotExact
	}
	e.leave(field, r, err.Error())
}

// rounded notes a price written rounded: the exact value differed from it
// only by float noise.
func (e *entry) rounded(field, exact, price, unit string) {
	if exact != "" {
		e.note(field, fmt.Sprintf("%v is %s %s; written as %s, the rest being binary floating-point noise",
			e.raw[field], exact, unit, price))
	}
}

// tokenPrices writes every per-token cost to m: base prices, context tiers
// from *_above_Nk_tokens, service tiers from *_batches, *_flex, *_priority.
func (e *entry) tokenPrices(m *model) {
	for _, f := range e.fields() {
		tf, ok, nested := parseTokenField(f)
		switch {
		case !ok:
			continue
		case nested:
			e.leave(f, NoCounterpart, "")
			continue
		}
		price, exact, err := convert(e.raw[f], 1, 6, perMillion) // per token → per million
		if err != nil {
			e.fail(f, err)
			continue
		}
		e.rounded(f, exact, price, perMillion)
		e.used[f] = true
		m.set(tf, price)
	}
}

const perMillion = "per million tokens"

// candidate is a LiteLLM field that can price a unit: value × mul × 10^shift.
type candidate struct {
	field string
	mul   int64
	shift int
	unit  string // for messages: "per second"
}

// pick converts the first candidate present: one unit has one rate, and
// LiteLLM bills one of its fields for it, never their sum. Later candidates
// are superseded, and an unusable first candidate is not replaced by a
// later one, which would be a rate the source does not mean.
func (e *entry) pick(cands []candidate) (string, bool) {
	var chosen *candidate
	price := ""
	for i := range cands {
		c := &cands[i]
		v, ok := e.value(c.field)
		if !ok {
			continue
		}
		if chosen != nil {
			e.leave(c.field, Superseded, e.differs(*chosen, *c))
			continue
		}
		chosen = c
		p, exact, err := convert(v, c.mul, c.shift, c.unit)
		if err != nil {
			e.fail(c.field, err)
			continue
		}
		e.rounded(c.field, exact, p, c.unit)
		e.used[c.field], price = true, p
	}
	return price, price != ""
}

// differs explains a superseded field when its price is not the one used.
func (e *entry) differs(used, other candidate) string {
	a, _, errA := convert(e.raw[used.field], used.mul, used.shift, used.unit)
	b, _, errB := convert(e.raw[other.field], other.mul, other.shift, other.unit)
	if errA == nil && errB == nil && a == b {
		return ""
	}
	return fmt.Sprintf("%v differs from %s (%v), which is used; left out",
		e.raw[other.field], used.field, e.raw[used.field])
}

// unitPrices writes the per-unit prices the entry's mode gives meaning to.
// Fields a mode gives no meaning to stay unused and are reported as having
// no counterpart: a chat model's input_cost_per_second is GPU runtime, not
// audio, and its input_cost_per_image is per prompt image, not per image
// generated.
func (e *entry) unitPrices(m *model, mode modeInfo) {
	if mode.seconds {
		// One duration is metered: the audio sent for transcription, the
		// audio produced by speech. The field for that side is used and the
		// other superseded. (LiteLLM's own calculator tries output first for
		// both; its whisper-1 has equal rates either way, but its Groq
		// whisper entries carry the real rate in input_cost_per_second and
		// an output_cost_per_second of 0, which would bill nothing.)
		cands := []candidate{{"input_cost_per_second", 1, 0, "per second"}, {"output_cost_per_second", 1, 0, "per second"}}
		if mode.outputAudio {
			cands[0], cands[1] = cands[1], cands[0]
		}
		if p, ok := e.pick(cands); ok {
			m.units[uAudioSecond] = p
		}
	}
	if mode.chars {
		// tokenmeter counts a speech request's input characters; LiteLLM's
		// output_cost_per_character has no usage to apply to.
		if p, ok := e.pick([]candidate{{"input_cost_per_character", 1, 3, "per 1,000 characters"}}); ok {
			m.units[uCharacters] = p
		}
	}
	if p, ok := e.pick([]candidate{{"input_cost_per_request", 1, 0, "per request"}, {"input_cost_per_query", 1, 0, "per request"}}); ok {
		m.units[uRequest] = p
	}
	if p, ok := e.imagePrice(m.tokenPriced, mode.images, nil); ok {
		m.images = map[string]string{"default": p}
	}
}

// imagePrice returns the price of one generated image: output_cost_per_image,
// else (for image modes) input_cost_per_image, else (for a size variant)
// input_cost_per_pixel × width × height, the order LiteLLM's image cost
// calculators look in. A model priced by tokens gets none: LiteLLM bills
// its images by tokens.
func (e *entry) imagePrice(tokenPriced, imageMode bool, v *variant) (string, bool) {
	cands := []candidate{{"output_cost_per_image", 1, 0, "per image"}}
	if imageMode {
		cands = append(cands, candidate{"input_cost_per_image", 1, 0, "per image"})
	}
	if v != nil {
		cands = append(cands, candidate{"input_cost_per_pixel", v.w * v.h, 0, "per " + v.size + " image"})
	}
	if tokenPriced {
		for _, c := range cands {
			if _, ok := e.value(c.field); ok {
				e.leave(c.field, Superseded, "")
			}
		}
		return "", false
	}
	return e.pick(cands)
}

// complete checks that m has the prices its mode needs and fills in what
// the schema requires. It returns why the entry must be skipped, or "".
func (e *entry) complete(m *model, modeName string, mode modeInfo) string {
	if mode.tokens {
		var missing []string
		for _, c := range []int{cInput, cOutput} {
			if m.prices[c] == "" {
				missing = append(missing, classField(c))
			}
		}
		if len(missing) > 0 {
			return fmt.Sprintf("no usable %s; mode %s needs input and output token prices", strings.Join(missing, " or "), modeName)
		}
	} else if m.prices.empty() && m.units == [numUnits]string{} && len(m.images) == 0 {
		return "no usable price"
	}
	// The schema requires input and output prices; an embedding, image or
	// audio model that LiteLLM prices without them bills no such tokens.
	var zeroed []string
	for _, c := range []int{cInput, cOutput} {
		if m.prices[c] == "" {
			m.prices[c] = "0"
			zeroed = append(zeroed, classField(c))
		}
	}
	if len(zeroed) > 0 {
		e.note("", fmt.Sprintf("no %s: written as 0, which the schema requires and mode %s does not bill",
			strings.Join(zeroed, " or "), modeName))
	}
	reasoningFollowsOutput(m)
	return ""
}

// reasoningFollowsOutput keeps LiteLLM's rule for reasoning tokens in
// tiers: without output_cost_per_reasoning_token they cost the output price
// in force, tiered or not. The schema keeps the base price for a class a
// tier does not list, so the tier lists reasoning itself.
func reasoningFollowsOutput(m *model) {
	if m.prices[cReasoning] != "" {
		return
	}
	follow := func(p *priceSet) {
		if p[cOutput] != "" && p[cReasoning] == "" {
			p[cReasoning] = p[cOutput]
		}
	}
	for i := range m.context {
		follow(&m.context[i].prices)
	}
	for i := range m.service {
		follow(&m.service[i])
	}
}

// classField names the LiteLLM field of a base class price.
func classField(c int) string {
	for f, fc := range classFields {
		if fc == c {
			return f
		}
	}
	return classNames[c]
}
