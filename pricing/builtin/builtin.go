// Package builtin holds the price catalog compiled into tokenmeter: the
// current models of OpenAI, Anthropic, Google, AWS Bedrock, Azure OpenAI,
// Mistral, DeepSeek and Cohere, each entry with the source its prices were
// read from and the date they were read (prices.yaml, schema v2).
//
// Load it before any user catalog, so that the user's entries of the same
// provider and name replace it (pricing.LoadSources):
//
//	cat, err := pricing.LoadSources(builtin.Source(), userSource)
package builtin

import (
	"bufio"
	"bytes"
	_ "embed"
	"strings"
	"sync"

	"github.com/tokenmeter/tokenmeter/pricing"
)

//go:embed prices.yaml
var prices []byte

// name is computed once: the catalog is constant for the life of the binary.
var name = sync.OnceValue(func() string { return "builtin (tokenmeter " + asOfSummary(prices) + ")" })

// Source returns the embedded catalog as a pricing.Source named
// "builtin (tokenmeter prices as of FIRST to LAST)", the range of its as_of
// dates, so that a load error or a price's origin names the catalog and how
// old its prices are. The data is shared: callers must not modify it.
func Source() pricing.Source {
	return pricing.Source{Name: name(), Data: prices}
}

// asOfSummary reads the as_of dates of a catalog's entries without parsing
// the YAML (the loader does that, and reports what is wrong): the earliest
// and latest, which sort as strings because they are YYYY-MM-DD.
func asOfSummary(data []byte) string {
	var first, last string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "- ")
		v, ok := strings.CutPrefix(line, "as_of:")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if first == "" || v < first {
			first = v
		}
		if v > last {
			last = v
		}
	}
	switch {
	case first == "":
		return "prices without dates"
	case first == last:
		return "prices as of " + first
	}
	return "prices as of " + first + " to " + last
}
