package pricing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/cfgerr"
	"github.com/tokenmeter/tokenmeter/money"
	"github.com/tokenmeter/tokenmeter/usage"
)

// The keys each mapping accepts; anything else is reported as unknown.
var (
	topKeys   = []string{"currency", "models"}
	entryKeys = []string{"name", "provider", "aliases", "match", "source", "as_of", "effective_from", "prices",
		"units", "context_tiers", "service_tiers"}
	priceKeys = func() []string {
		keys := make([]string, usage.NumClasses)
		for c := range usage.NumClasses {
			keys[c] = c.String()
		}
		return keys
	}()
)

// catalogFile is one decoded file, before files are merged.
type catalogFile struct {
	file         string
	currency     money.Currency // "" when the file's currency is invalid
	currencyNode *yaml.Node     // nil when the file relies on the default
	entries      []*Entry
}

// decoder walks the YAML node tree of one file. It reads every value from
// the node's text, so no price ever passes through float64, and it keeps
// going after a problem so that one run reports them all.
type decoder struct {
	file string
	errs *cfgerr.List
}

func decodeFile(file string, data []byte, errs *cfgerr.List) *catalogFile {
	d := &decoder{file: file, errs: errs}
	f := &catalogFile{file: file, currency: money.USD}
	root := d.document(data)
	if root == nil {
		return f
	}
	fs, ok := d.fields(root, "", topKeys)
	if !ok {
		return f
	}
	if v := fs["currency"]; v != nil {
		f.currencyNode = v
		f.currency = d.currency(v)
	}
	models := fs["models"]
	if models == nil {
		d.fail(root, "models", "missing; want a list of models")
		return f
	}
	if !d.want(models, yaml.SequenceNode, "models", "a list of models") {
		return f
	}
	if len(models.Content) == 0 {
		d.fail(models, "models", "empty; want at least one model")
	}
	for i, n := range models.Content {
		if e := d.entry(n, fmt.Sprintf("models[%d]", i)); e != nil {
			f.entries = append(f.entries, e)
		}
	}
	return f
}

// document returns the root node of the file's single YAML document, or nil
// after reporting why there is none.
func (d *decoder) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) || (err == nil && isEmpty(&doc)) {
		d.errs.Add(&cfgerr.Error{File: d.file, Reason: `empty catalog; want a "models" list`})
		return nil
	}
	if err != nil {
		d.errs.Add(d.syntaxError(err))
		return nil
	}
	// A second document would be ignored by a plain Unmarshal, and with it
	// every price it holds.
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.errs.Add(d.syntaxError(err))
	default:
		d.errs.Add(&cfgerr.Error{File: d.file, Line: next.Line,
			Reason: "a second YAML document; a catalog file holds one, split others into their own files"})
	}
	return doc.Content[0]
}

func isEmpty(doc *yaml.Node) bool {
	return len(doc.Content) == 0 || (doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null")
}

// syntaxError turns "yaml: line 3: did not find ..." into a located error.
func (d *decoder) syntaxError(err error) *cfgerr.Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &cfgerr.Error{File: d.file, Reason: "invalid YAML: " + msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		num, text, found := strings.Cut(rest, ": ")
		if n, err := strconv.Atoi(num); found && err == nil {
			e.Line, e.Reason = n, "invalid YAML: "+text
		}
	}
	return e
}

func (d *decoder) fail(n *yaml.Node, key, reason string) {
	d.errs.Add(cfgerr.At(d.file, n, key, reason))
}

// want reports whether n is of kind, and reports it when it is not.
func (d *decoder) want(n *yaml.Node, kind yaml.Kind, key, what string) bool {
	switch {
	case n.Kind == kind:
		return true
	case n.Kind == yaml.AliasNode:
		// Aliases are refused so that each price is read where it is
		// written, beside its source and date.
		d.fail(n, key, "YAML aliases are not supported; write the value out")
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		d.fail(n, key, "missing value; want "+what)
	default:
		d.fail(n, key, "want "+what)
	}
	return false
}

// fields returns the values of mapping n by key, after reporting unknown and
// repeated keys. ok is false when n is not a mapping.
func (d *decoder) fields(n *yaml.Node, path string, known []string) (fs map[string]*yaml.Node, ok bool) {
	if n.Kind != yaml.MappingNode {
		d.want(n, yaml.MappingNode, path, "a mapping with keys "+strings.Join(known, ", "))
		return nil, false
	}
	fs = make(map[string]*yaml.Node, len(n.Content)/2)
	lines := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "want a plain key")
			continue
		}
		key := join(path, k.Value)
		switch first, dup := lines[k.Value]; {
		case !slices.Contains(known, k.Value):
			d.errs.Add(&cfgerr.Error{File: d.file, Line: k.Line, Key: key,
				Reason: "unknown key; want one of " + strings.Join(known, ", ")})
		case dup:
			d.errs.Add(&cfgerr.Error{File: d.file, Line: k.Line, Key: key,
				Reason: fmt.Sprintf("repeated key; first at line %d", first)})
		default:
			fs[k.Value], lines[k.Value] = v, k.Line
		}
	}
	return fs, true
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// scalar returns the text of scalar n.
func (d *decoder) scalar(n *yaml.Node, key, what string) (string, bool) {
	if !d.want(n, yaml.ScalarNode, key, what) {
		return "", false
	}
	if n.Tag == "!!null" {
		d.fail(n, key, "missing value; want "+what)
		return "", false
	}
	return n.Value, true
}

func (d *decoder) currency(n *yaml.Node) money.Currency {
	s, ok := d.scalar(n, "currency", "an ISO 4217 code such as USD")
	if !ok {
		return ""
	}
	c, err := money.ParseCurrency(s)
	switch {
	case errors.Is(err, money.ErrUnknownCurrency):
		d.fail(n, "currency", "not an active ISO 4217 currency code")
		return ""
	case err != nil:
		d.fail(n, "currency", "want a three-letter upper-case ISO 4217 code such as USD")
		return ""
	}
	return c
}
