package litellm

import (
	"bytes"
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

const header = `Converted from LiteLLM's model_prices_and_context_window.json by "tokenmeter prices import".
LiteLLM's per-token costs are written per million tokens, exactly; see the import report
for every entry and field left out.`

// encode writes the catalog, models sorted by provider then name, so that
// the same input always gives the same bytes.
func (c *converter) encode() ([]byte, error) {
	slices.SortFunc(c.order, func(a, b *model) int {
		return cmp.Or(cmp.Compare(a.provider, b.provider),
			cmp.Compare(strings.ToLower(a.name), strings.ToLower(b.name)), cmp.Compare(a.name, b.name))
	})
	asOf := c.opts.AsOf.Format(time.DateOnly)
	list := &yaml.Node{Kind: yaml.SequenceNode}
	for _, m := range c.order {
		list.Content = append(list.Content, m.node(asOf))
	}
	root := mapping()
	root.add("currency", str("USD")) // LiteLLM's costs are all in US dollars
	root.add("models", list)
	doc := &yaml.Node{Kind: yaml.DocumentNode, HeadComment: header, Content: []*yaml.Node{root.Node}}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (m *model) node(asOf string) *yaml.Node {
	n := mapping()
	n.add("name", str(m.name))
	if m.provider != "" {
		n.add("provider", str(m.provider))
	}
	n.add("source", str(m.source))
	n.add("as_of", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!timestamp", Value: asOf})
	n.add("prices", priceNode(&m.prices))
	if u := m.unitsNode(); u != nil {
		n.add("units", u)
	}
	if len(m.context) > 0 {
		tiers := &yaml.Node{Kind: yaml.SequenceNode}
		for _, t := range m.context {
			tn := mapping()
			tn.add("above_input_tokens", number(strconv.FormatInt(t.above, 10)))
			tn.add("prices", priceNode(&t.prices))
			tiers.Content = append(tiers.Content, tn.Node)
		}
		n.add("context_tiers", tiers)
	}
	st := mapping()
	for t := range numTiers {
		if !m.service[t].empty() {
			tn := mapping()
			tn.add("prices", priceNode(&m.service[t]))
			st.add(tierNames[t], tn.Node)
		}
	}
	if len(st.Content) > 0 {
		n.add("service_tiers", st.Node)
	}
	return n.Node
}

func (m *model) unitsNode() *yaml.Node {
	u := mapping()
	for i, p := range m.units {
		if p != "" {
			u.add(unitNames[i], number(p))
		}
	}
	if len(m.images) > 0 {
		im := mapping()
		// Sized prices first, in order, then "default", as a reader scans them.
		keys := slices.SortedFunc(maps.Keys(m.images), func(a, b string) int {
			return cmp.Or(cmp.Compare(boolInt(a == "default"), boolInt(b == "default")), cmp.Compare(a, b))
		})
		for _, k := range keys {
			im.add(k, number(m.images[k]))
		}
		u.add(unitNames[uImage], im.Node)
	}
	if len(u.Content) == 0 {
		return nil
	}
	return u.Node
}

// priceNode writes a price set on one line, in schema order.
func priceNode(p *priceSet) *yaml.Node {
	n := mapping()
	n.Style = yaml.FlowStyle
	for c, v := range p {
		if v != "" {
			n.add(classNames[c], number(v))
		}
	}
	return n.Node
}

// node is a mapping under construction.
type node struct{ *yaml.Node }

func mapping() node { return node{&yaml.Node{Kind: yaml.MappingNode}} }

func (n node) add(key string, v *yaml.Node) {
	n.Content = append(n.Content, str(key), v)
}

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

// number writes decimal text as a plain scalar: the catalog reads prices
// from the scalar's text, so "0.000000001" stays exactly that.
func number(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
