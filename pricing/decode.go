package pricing

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/yamlcheck"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
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
type decoder struct{ yamlcheck.Checker }

func decodeFile(file string, data []byte, errs *cfgerr.List) *catalogFile {
	d := &decoder{yamlcheck.Checker{File: file, Errs: errs}}
	f := &catalogFile{file: file, currency: money.USD}
	root := d.document(data)
	if root == nil {
		return f
	}
	fs, ok := d.Fields(root, "", topKeys)
	if !ok {
		return f
	}
	if v := fs["currency"]; v != nil {
		f.currencyNode = v
		f.currency = d.currency(v)
	}
	models := fs["models"]
	if models == nil {
		d.Fail(root, "models", "missing; want a list of models")
		return f
	}
	if !d.Want(models, yaml.SequenceNode, "models", "a list of models") {
		return f
	}
	if len(models.Content) == 0 {
		d.Fail(models, "models", "empty; want at least one model")
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
		d.Errs.Add(&cfgerr.Error{File: d.File, Reason: `empty catalog; want a "models" list`})
		return nil
	}
	if err != nil {
		d.Errs.Add(d.syntaxError(err))
		return nil
	}
	// A second document would be ignored by a plain Unmarshal, and with it
	// every price it holds.
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.Errs.Add(d.syntaxError(err))
	default:
		d.Errs.Add(&cfgerr.Error{File: d.File, Line: next.Line,
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
	e := &cfgerr.Error{File: d.File, Reason: "invalid YAML: " + msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		num, text, found := strings.Cut(rest, ": ")
		if n, err := strconv.Atoi(num); found && err == nil {
			e.Line, e.Reason = n, "invalid YAML: "+text
		}
	}
	return e
}

func (d *decoder) currency(n *yaml.Node) money.Currency {
	s, ok := d.Scalar(n, "currency", "an ISO 4217 code such as USD")
	if !ok {
		return ""
	}
	c, err := money.ParseCurrency(s)
	switch {
	case errors.Is(err, money.ErrUnknownCurrency):
		d.Fail(n, "currency", "not an active ISO 4217 currency code")
		return ""
	case err != nil:
		d.Fail(n, "currency", "want a three-letter upper-case ISO 4217 code such as USD")
		return ""
	}
	return c
}
