package fx

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/yamlwalk"
)

// The keys each mapping accepts; anything else is reported as unknown.
var (
	topKeys  = []string{"rates"}
	rateKeys = []string{"from", "to", "rate", "effective_from", "source"}
)

// ParseRates reads rates from node, a mapping (or a document holding one):
//
//	rates:
//	  - from: EUR                          # active ISO 4217 codes, upper case
//	    to: USD
//	    rate: "1.0834"                     # 1 EUR = 1.0834 USD; plain decimal, ≤ 12 places, > 0
//	    effective_from: 2026-11-01T00:00:00Z  # RFC 3339 with a UTC offset
//	    source: "ECB reference rate"       # required: where the rate was read
//
// Every value is read from its YAML text, never through float64. Problems
// are reported as a cfgerr.List, all at once, each with file, line, key (a
// path relative to node, such as "rates[2].rate"), value and reason: unknown
// or repeated keys, a missing field, an unknown currency, a pair of one
// currency with itself, a rate that is not positive, has an exponent, more
// than 12 decimals or too many digits, an instant without an offset, and two
// rates of the same pair effective at the same instant. Rates that pass are
// accepted by NewTable.
func ParseRates(file string, node *yaml.Node) ([]Rate, error) {
	d := &decoder{}
	d.Walker = yamlwalk.Walker{File: file, Errs: &d.list}
	rates := d.top(node)
	if err := d.list.Err(); err != nil {
		return nil, err
	}
	return rates, nil
}

// decoder walks the node tree and keeps going after a problem, so that one
// `tokenmeter check` shows them all.
type decoder struct {
	yamlwalk.Walker
	list cfgerr.List
}

// located is a decoded rate with the node and key of its effective_from, for
// reporting duplicates.
type located struct {
	r     Rate
	at    *yaml.Node
	atKey string
}

func (d *decoder) top(node *yaml.Node) []Rate {
	if node != nil && node.Kind == yaml.DocumentNode {
		node = firstNode(node.Content)
	}
	// yaml.Unmarshal of an empty file leaves a zero Node.
	if node == nil || node.Kind == 0 || (node.Kind == yaml.ScalarNode && node.Tag == "!!null") {
		d.Errs.Add(&cfgerr.Error{File: d.File, Reason: `empty; want a mapping with a "rates" list`})
		return nil
	}
	fs, ok := d.Fields(node, "", topKeys)
	if !ok {
		return nil
	}
	list := fs["rates"]
	if list == nil {
		d.Missing(node, "rates", "a list of rates")
		return nil
	}
	var all []located
	d.Sequence(list, "rates", "a list of rates", func(item *yaml.Node, key string) {
		if r, ok := d.rate(item, key); ok {
			all = append(all, r)
		}
	})
	d.duplicates(all)
	rates := make([]Rate, len(all))
	for i, l := range all {
		rates[i] = l.r
	}
	return rates
}

func firstNode(content []*yaml.Node) *yaml.Node {
	if len(content) == 0 {
		return nil
	}
	return content[0]
}

// rate decodes one list item; ok is false when any of its fields is wrong.
func (d *decoder) rate(n *yaml.Node, path string) (located, bool) {
	fs, ok := d.Fields(n, path, rateKeys)
	if !ok {
		return located{}, false
	}
	get := func(key, what string) *yaml.Node {
		v := fs[key]
		if v == nil {
			d.Missing(n, yamlwalk.Join(path, key), what)
		}
		return v
	}
	var l located
	from, okFrom := d.currency(get("from", "the currency converted from, such as EUR"), yamlwalk.Join(path, "from"))
	to, okTo := d.currency(get("to", "the currency converted to, such as USD"), yamlwalk.Join(path, "to"))
	if okFrom && okTo && from == to {
		d.Fail(fs["to"], yamlwalk.Join(path, "to"), "same currency as from; a rate converts between two currencies")
		okTo = false
	}
	rate, okRate := d.decimal(get("rate", `the units of to that one unit of from buys, such as "1.0834"`), yamlwalk.Join(path, "rate"))
	l.at, l.atKey = get("effective_from", "the instant the rate takes effect, such as 2026-11-01T00:00:00Z"), yamlwalk.Join(path, "effective_from")
	at, okAt := d.instant(l.at, l.atKey)
	src, okSrc := d.text(get("source", `where the rate was read, such as "ECB reference rate"`), yamlwalk.Join(path, "source"))
	l.r = Rate{From: from, To: to, Rate: rate, EffectiveFrom: at, Source: src}
	return l, okFrom && okTo && okRate && okAt && okSrc
}

func (d *decoder) currency(n *yaml.Node, key string) (money.Currency, bool) {
	s, ok := d.Scalar(n, key, "an ISO 4217 code such as USD")
	if !ok {
		return "", false
	}
	c, err := money.ParseCurrency(s)
	switch {
	case errors.Is(err, money.ErrUnknownCurrency):
		d.Fail(n, key, money.ErrUnknownCurrency.Error())
	case err != nil:
		d.Fail(n, key, money.ErrCurrencySyntax.Error())
	}
	return c, err == nil
}

func (d *decoder) decimal(n *yaml.Node, key string) (Decimal, bool) {
	s, ok := d.Scalar(n, key, "a rate such as \"1.0834\"")
	if !ok {
		return 0, false
	}
	v, err := ParseDecimal(s)
	switch {
	case errors.Is(err, ErrPrecision):
		d.Fail(n, key, "more than 12 decimal places; a rate is exact to 10⁻¹²")
	case errors.Is(err, money.ErrRange):
		d.Fail(n, key, "too large; a rate is at most 9223372.036854775807")
	case err != nil:
		d.Fail(n, key, `not a plain decimal (no exponent or separators); want a rate such as "1.0834"`)
	case v <= 0:
		d.Fail(n, key, "not positive; want the units of to that one unit of from buys")
	default:
		return v, true
	}
	return 0, false
}

func (d *decoder) instant(n *yaml.Node, key string) (time.Time, bool) {
	s, ok := d.Scalar(n, key, "an RFC 3339 instant such as 2026-11-01T00:00:00Z")
	if !ok {
		return time.Time{}, false
	}
	// RFC 3339 requires the offset: a bare date or local time would take
	// effect at a different instant on each host.
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		d.Fail(n, key, "want an RFC 3339 instant with a UTC offset, such as 2026-11-01T00:00:00Z")
		return time.Time{}, false
	}
	return t, true
}

func (d *decoder) text(n *yaml.Node, key string) (string, bool) {
	s, ok := d.Scalar(n, key, `where the rate was read, such as "ECB reference rate"`)
	if ok && strings.TrimSpace(s) == "" {
		d.Fail(n, key, `empty; want where the rate was read, such as "ECB reference rate"`)
		return "", false
	}
	return s, ok
}

// duplicates reports a second rate of the same pair at the same instant,
// whatever offset each instant is written with.
func (d *decoder) duplicates(all []located) {
	first := make(map[instantKey]*yaml.Node, len(all))
	for _, l := range all {
		k := instantKey{pair{l.r.From, l.r.To}, l.r.EffectiveFrom.Unix(), l.r.EffectiveFrom.Nanosecond()}
		if prev, dup := first[k]; dup {
			d.Fail(l.at, l.atKey, fmt.Sprintf("%s to %s already has a rate effective at this instant, at line %d",
				l.r.From, l.r.To, prev.Line))
			continue
		}
		first[k] = l.at
	}
}
