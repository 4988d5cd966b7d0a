package pricing

import (
	"errors"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/internal/yamlwalk"
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
type decoder struct{ yamlwalk.Walker }

func decodeFile(file string, data []byte, errs *cfgerr.List) *catalogFile {
	d := &decoder{yamlwalk.Walker{File: file, Errs: errs}}
	f := &catalogFile{file: file, currency: money.USD}
	root, ok := d.Document(data)
	if !ok {
		return f
	}
	if root == nil {
		d.Errs.Add(&cfgerr.Error{File: d.File, Reason: `empty catalog; want a "models" list`})
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
		d.Missing(root, "models", "a list of models")
		return f
	}
	if models.Kind == yaml.SequenceNode && len(models.Content) == 0 {
		d.Fail(models, "models", "empty; want at least one model")
	}
	d.Sequence(models, "models", "a list of models", func(n *yaml.Node, key string) {
		if e := d.entry(n, key); e != nil {
			f.entries = append(f.entries, e)
		}
	})
	return f
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
