package pricing

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/money"
	"github.com/tokenmeter/tokenmeter/usage"
)

// entry decodes models[i]. It returns nil when the entry has no usable name
// or provider; an entry with other problems is still returned, so that its
// names take part in the duplicate check, and the load fails anyway.
func (d *decoder) entry(n *yaml.Node, path string) *Entry {
	fs, ok := d.fields(n, path, entryKeys)
	if !ok {
		return nil
	}
	e := &Entry{File: d.file, Line: n.Line}
	if v := d.required(fs, n, path, "source", "the URL or document the prices were read from"); v != nil {
		e.Source = d.text(v, path+".source", "the URL or document the prices were read from")
	}
	if v := d.required(fs, n, path, "as_of", "the date the prices were read, as YYYY-MM-DD"); v != nil {
		e.AsOf = d.date(v, path+".as_of")
	}
	if v := d.required(fs, n, path, "prices", "input and output prices per million tokens"); v != nil {
		d.prices(v, path+".prices", &e.Prices, &e.Has)
	}
	nameNode := d.required(fs, n, path, "name", "the model name")
	if nameNode == nil {
		return nil
	}
	e.Name = d.name(nameNode, path+".name", "a model name")
	if v := fs["provider"]; v != nil {
		e.Provider = lowerASCII(d.name(v, path+".provider", "a provider name"))
		if e.Provider == "" {
			return nil
		}
	}
	if e.Name == "" {
		return nil
	}
	prefix := e.Provider + "\x00"
	e.keys = append(e.keys, entryKey{key: prefix + lowerASCII(e.Name), value: e.Name, path: path + ".name", line: nameNode.Line})
	if v := fs["aliases"]; v != nil && d.want(v, yaml.SequenceNode, path+".aliases", "a list of model names") {
		for i, a := range v.Content {
			ap := fmt.Sprintf("%s.aliases[%d]", path, i)
			if alias := d.name(a, ap, "a model name"); alias != "" {
				e.Aliases = append(e.Aliases, alias)
				e.keys = append(e.keys, entryKey{key: prefix + lowerASCII(alias), value: alias, path: ap, line: a.Line})
			}
		}
	}
	return e
}

// required returns fs[key], or reports it missing from mapping n.
func (d *decoder) required(fs map[string]*yaml.Node, n *yaml.Node, path, key, what string) *yaml.Node {
	v := fs[key]
	if v == nil {
		d.fail(n, join(path, key), "missing; want "+what)
	}
	return v
}

// text returns a non-blank scalar, or "" after reporting it.
func (d *decoder) text(n *yaml.Node, key, what string) string {
	s, ok := d.scalar(n, key, what)
	if ok && strings.TrimSpace(s) == "" {
		d.fail(n, key, "empty; want "+what)
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
			d.fail(n, key, "want "+what+" without spaces or control characters")
			return ""
		}
	}
	return s
}

func (d *decoder) date(n *yaml.Node, key string) time.Time {
	s, ok := d.scalar(n, key, "a date as YYYY-MM-DD")
	if !ok {
		return time.Time{}
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		d.fail(n, key, "want a date as YYYY-MM-DD")
	}
	return t
}

// prices fills p from mapping n. Input and output are required; omitted
// classes default to the dearer published rate for the same tokens (see the
// package comment), so an unlisted discount is never assumed.
func (d *decoder) prices(n *yaml.Node, path string, p *[usage.NumClasses]money.PerMillion, has *[usage.NumClasses]bool) {
	fs, ok := d.fields(n, path, priceKeys)
	if !ok {
		return
	}
	var set [usage.NumClasses]bool
	for c := range usage.NumClasses {
		if v := fs[c.String()]; v != nil {
			p[c], set[c] = d.price(v, path+"."+c.String())
		}
	}
	for _, c := range []usage.Class{usage.Input, usage.Output} {
		if fs[c.String()] == nil {
			d.fail(n, path+"."+c.String(), "missing; every model needs input and output prices")
		}
	}
	if !set[usage.Reasoning] {
		p[usage.Reasoning] = p[usage.Output]
	}
	for _, c := range []usage.Class{usage.CacheRead, usage.CacheWrite, usage.CacheWrite1h} {
		if !set[c] {
			p[c] = p[usage.Input]
		}
	}
	// Text classes always have a price (written or defaulted above); audio
	// and image classes only when written.
	for c := range usage.NumClasses {
		has[c] = set[c] || c < usage.AudioInput
	}
}

// price reads one price from its scalar's text, never through float64.
func (d *decoder) price(n *yaml.Node, key string) (money.PerMillion, bool) {
	const what = "a price per million tokens such as 0.15"
	s, ok := d.scalar(n, key, what)
	if !ok {
		return 0, false
	}
	a, err := money.Parse(s)
	switch {
	case errors.Is(err, money.ErrPrecision):
		d.fail(n, key, "more than 9 decimal places; prices are exact to a nano-unit")
	case errors.Is(err, money.ErrRange):
		d.fail(n, key, "out of range; want "+what)
	case err != nil:
		d.fail(n, key, "not a plain decimal (no exponent or separators); want "+what)
	case a < 0:
		d.fail(n, key, "negative; a price is zero or more")
	default:
		return money.PerMillion(a), true
	}
	return 0, false
}
