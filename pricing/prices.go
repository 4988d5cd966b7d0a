package pricing

import (
	"errors"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// priceList is one resolved list of token prices, with which classes it
// prices (has) and which of those some level of the file wrote (written).
type priceList struct {
	prices  [usage.NumClasses]money.PerMillion
	has     [usage.NumClasses]bool
	written [usage.NumClasses]bool
}

// defaultSource is the class whose price an unwritten class takes: the
// dearer published rate for the same tokens (see the package comment).
// Audio and image classes have none.
func defaultSource(c usage.Class) (usage.Class, bool) {
	switch c {
	case usage.Reasoning:
		return usage.Output, true
	case usage.CacheRead, usage.CacheWrite, usage.CacheWrite1h:
		return usage.Input, true
	}
	return 0, false
}

// with returns l with the classes set lists replaced by p. A class no level
// has written follows its default source, so that a tier raising output
// raises unwritten reasoning with it rather than leaving it at the base
// price; a written class keeps its price, as the schema says.
func (l priceList) with(p *[usage.NumClasses]money.PerMillion, set *[usage.NumClasses]bool) priceList {
	for c := range usage.NumClasses {
		if set[c] {
			l.prices[c], l.has[c], l.written[c] = p[c], true, true
		}
	}
	for c := range usage.NumClasses {
		if src, ok := defaultSource(c); ok && !l.written[c] {
			l.prices[c], l.has[c] = l.prices[src], l.has[src]
		}
	}
	return l
}

func (e *Entry) base() priceList {
	return priceList{prices: e.Prices, has: e.Has, written: e.written}
}

// levels are the entry's price lists without a context tier ([0]) and in
// each of them ([i+1]).
func (e *Entry) levels() []priceList {
	ls := make([]priceList, 0, 1+len(e.ContextTiers))
	ls = append(ls, e.base())
	for _, t := range e.ContextTiers {
		ls = append(ls, priceList{prices: t.Prices, has: t.Has, written: t.written})
	}
	return ls
}

// basePrices reads an entry's prices. Input and output are required;
// omitted classes default to the dearer published rate for the same tokens
// (see the package comment), so an unlisted discount is never assumed.
func (d *decoder) basePrices(n *yaml.Node, path string) priceList {
	p, set, ok := d.priceSet(n, path)
	if !ok {
		return priceList{}
	}
	for _, c := range []usage.Class{usage.Input, usage.Output} {
		if !set[c] && !d.listed(n, c.String()) {
			d.Fail(n, path+"."+c.String(), "missing; every model needs input and output prices")
		}
	}
	l := priceList{}.with(&p, &set)
	// Text classes always have a price (written or defaulted above); audio
	// and image classes only when written.
	for c := range usage.AudioInput {
		l.has[c] = true
	}
	return l
}

// listed reports whether mapping n has key, valid or not, so that a price
// that failed to parse is not reported missing as well.
func (d *decoder) listed(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// priceSet reads the token prices mapping n lists, whatever they are.
func (d *decoder) priceSet(n *yaml.Node, path string) (p [usage.NumClasses]money.PerMillion, set [usage.NumClasses]bool, ok bool) {
	fs, ok := d.Fields(n, path, priceKeys)
	if !ok {
		return p, set, false
	}
	for c := range usage.NumClasses {
		if v := fs[c.String()]; v != nil {
			var a money.Amount
			a, set[c] = d.price(v, path+"."+c.String(), tokenPrice)
			p[c] = money.PerMillion(a)
		}
	}
	return p, set, true
}

// tierPrices is priceSet for a tier, which must list something.
func (d *decoder) tierPrices(n *yaml.Node, path string) (p [usage.NumClasses]money.PerMillion, set [usage.NumClasses]bool) {
	p, set, ok := d.priceSet(n, path)
	if ok && len(n.Content) == 0 {
		d.Fail(n, path, "empty; want at least one of "+strings.Join(priceKeys, ", "))
	}
	return p, set
}

// decimalKind says what a decimal is for, in error messages.
type decimalKind struct {
	what  string // "a price per ... such as ..."
	exact string // why nine places are the limit
}

var (
	tokenPrice   = decimalKind{"a price per million tokens such as 0.15", "prices are exact to a nano-unit"}
	requestPrice = decimalKind{"a price per request such as 0.01", "prices are exact to a nano-unit"}
	secondPrice  = decimalKind{"a price per second of audio such as 0.0001", "prices are exact to a nano-unit"}
	charsPrice   = decimalKind{"a price per 1,000 characters such as 0.015", "prices are exact to a nano-unit"}
	imagePrice   = decimalKind{"a price per image such as 0.04", "prices are exact to a nano-unit"}
	factor       = decimalKind{"a factor above zero such as 0.5", "multipliers are exact to 10⁻⁹"}
)

// price reads a price, zero or more.
func (d *decoder) price(n *yaml.Node, key string, k decimalKind) (money.Amount, bool) {
	a, ok := d.decimal(n, key, k)
	if ok && a < 0 {
		d.Fail(n, key, "negative; a price is zero or more")
		return 0, false
	}
	return a, ok
}

// decimal reads one decimal from its scalar's text, never through float64.
func (d *decoder) decimal(n *yaml.Node, key string, k decimalKind) (money.Amount, bool) {
	s, ok := d.Scalar(n, key, k.what)
	if !ok {
		return 0, false
	}
	a, err := money.Parse(s)
	switch {
	case errors.Is(err, money.ErrPrecision):
		d.Fail(n, key, "more than 9 decimal places; "+k.exact)
	case errors.Is(err, money.ErrRange):
		d.Fail(n, key, "out of range; want "+k.what)
	case err != nil:
		d.Fail(n, key, "not a plain decimal (no exponent or separators); want "+k.what)
	default:
		return a, true
	}
	return 0, false
}
