package pricing

import (
	"fmt"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
	"github.com/tokenmeter/tokenmeter/internal/money"
)

// The keys of the v2 blocks; anything else is reported as unknown.
var (
	unitKeys        = []string{"request", "audio_second", "characters_1k", "image"}
	contextTierKeys = []string{"above_input_tokens", "prices"}
	// The default (standard) tier is the base prices, so it is not listed;
	// see CostOptions for how requests name it.
	serviceTierNames = []string{"batch", "flex", "priority"}
	serviceTierKeys  = []string{"multiplier", "prices"}
)

// units reads the per-unit prices of mapping n into u.
func (d *decoder) units(n *yaml.Node, path string, u *UnitPrices) {
	fs, ok := d.Fields(n, path, unitKeys)
	if !ok {
		return
	}
	if v := fs["request"]; v != nil {
		u.Request, _ = d.price(v, path+".request", requestPrice)
	}
	if v := fs["audio_second"]; v != nil {
		u.AudioSecond, u.HasAudioSecond = d.price(v, path+".audio_second", secondPrice)
	}
	if v := fs["characters_1k"]; v != nil {
		u.Characters1k, u.HasCharacters1k = d.price(v, path+".characters_1k", charsPrice)
	}
	if v := fs["image"]; v != nil {
		u.Image = d.imagePrices(v, path+".image")
	}
}

// imagePrices reads the per-image prices, keyed by lower-cased
// "size/quality", "size" or "default". Keys are free-form sizes and
// qualities, so the mapping is walked here rather than by fields.
func (d *decoder) imagePrices(n *yaml.Node, path string) map[string]money.Amount {
	const what = `a mapping of "SIZE/QUALITY", "SIZE" or default to a price per image`
	if !d.Want(n, yaml.MappingNode, path, what) {
		return nil
	}
	if len(n.Content) == 0 {
		d.Fail(n, path, "empty; want "+what)
		return nil
	}
	m := make(map[string]money.Amount, len(n.Content)/2)
	lines := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.Fail(k, path, "want a plain key")
			continue
		}
		key, norm := path+"."+k.Value, lowerASCII(k.Value)
		if !validImageKey(norm) {
			d.Errs.Add(&cfgerr.Error{File: d.File, Line: k.Line, Key: key,
				Reason: `want "SIZE/QUALITY" such as 1024x1024/hd, "SIZE" such as 1024x1024, or default`})
			continue
		}
		// Keys match case-insensitively, so "HD" and "hd" would be one key.
		if first, dup := lines[norm]; dup {
			d.Errs.Add(&cfgerr.Error{File: d.File, Line: k.Line, Key: key,
				Reason: fmt.Sprintf("repeated key; first at line %d", first)})
			continue
		}
		lines[norm] = k.Line
		if p, ok := d.price(v, key, imagePrice); ok {
			m[norm] = p
		}
	}
	return m
}

// validImageKey accepts "default", "size" and "size/quality", each part
// non-empty and free of spaces, control characters and further slashes.
func validImageKey(k string) bool {
	if k == "" || k[0] == '/' || k[len(k)-1] == '/' {
		return false
	}
	slashes := 0
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case c <= ' ' || c == 0x7f:
			return false
		case c == '/':
			slashes++
		}
	}
	return slashes <= 1
}

// contextTiers reads the tiers; each resolves against base (see
// ContextTier), not against the tier below it.
func (d *decoder) contextTiers(n *yaml.Node, path string, base priceList) []ContextTier {
	if !d.Want(n, yaml.SequenceNode, path, "a list of tiers, each with above_input_tokens and prices") {
		return nil
	}
	var tiers []ContextTier
	var prev int64 // the last valid threshold; thresholds are above zero
	for i, tn := range n.Content {
		tp := fmt.Sprintf("%s[%d]", path, i)
		fs, ok := d.Fields(tn, tp, contextTierKeys)
		if !ok {
			continue
		}
		var t ContextTier
		if v := d.required(fs, tn, tp, "above_input_tokens", "the prompt tokens above which the tier applies"); v != nil {
			if t.AboveInputTokens, ok = d.tokens(v, tp+".above_input_tokens"); ok {
				// Lookup picks the highest tier passed; out of order, a
				// lower tier listed later would never apply.
				if t.AboveInputTokens <= prev {
					d.Fail(v, tp+".above_input_tokens",
						fmt.Sprintf("not above the previous tier's %d; list tiers in ascending order", prev))
				}
				prev = t.AboveInputTokens
			}
		}
		if v := d.required(fs, tn, tp, "prices", "the prices of the classes the tier changes"); v != nil {
			p, set := d.tierPrices(v, tp+".prices")
			l := base.with(&p, &set)
			t.Prices, t.Has, t.written = l.prices, l.has, l.written
		}
		tiers = append(tiers, t)
	}
	return tiers
}

// tokens reads a whole number of tokens above zero, digits only.
func (d *decoder) tokens(n *yaml.Node, key string) (int64, bool) {
	const what = "a whole number of prompt tokens above zero, such as 200000"
	s, ok := d.Scalar(n, key, what)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || !digits(s) {
		d.Fail(n, key, "want "+what)
		return 0, false
	}
	return v, true
}

// serviceTiers reads the tiers in the order of serviceTierNames. levels are
// the entry's price lists per context level, which explicit tier prices
// resolve against.
func (d *decoder) serviceTiers(n *yaml.Node, path string, levels []priceList) []ServiceTier {
	fs, ok := d.Fields(n, path, serviceTierNames)
	if !ok {
		return nil
	}
	if len(n.Content) == 0 {
		d.Fail(n, path, "empty; want one or more of batch, flex, priority")
	}
	var tiers []ServiceTier
	for _, name := range serviceTierNames {
		v := fs[name]
		if v == nil {
			continue
		}
		tp := path + "." + name
		tfs, ok := d.Fields(v, tp, serviceTierKeys)
		if !ok {
			continue
		}
		t := ServiceTier{Name: name, Multiplier: money.Scale}
		m, p := tfs["multiplier"], tfs["prices"]
		switch {
		case m != nil && p != nil:
			d.Fail(v, tp, "want multiplier or prices, not both")
		case m != nil:
			if a, ok := d.decimal(m, tp+".multiplier", factor); ok {
				if a <= 0 {
					d.Fail(m, tp+".multiplier", "want "+factor.what)
				}
				t.Multiplier = a
			}
		case p != nil:
			t.Prices, t.Set = d.tierPrices(p, tp+".prices")
			for _, l := range levels {
				t.lists = append(t.lists, l.with(&t.Prices, &t.Set))
			}
		default:
			d.Fail(v, tp, "empty; want multiplier or prices")
		}
		tiers = append(tiers, t)
	}
	return tiers
}
