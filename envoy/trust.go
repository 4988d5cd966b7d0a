package envoy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// HeaderPrefix starts the name of every header tokenmeter reads or sets
// (the default dimensions' x-tokenmeter-project, ...). The shipped configs
// remove every client request header with it before any filter runs.
const HeaderPrefix = "x-tokenmeter-"

// earlyMutationType is the @type of the connection manager's early header
// mutation extension that envoy.yaml strips the client's headers with.
const earlyMutationType = "envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation"

// TrustClientHeaders returns config WITHOUT the early header mutation that
// removes the client's x-tokenmeter-* request headers before any filter
// runs: an Envoy that believes whatever project a client names. It is for
// tests and benchmarks only, never to deploy: they attribute requests by
// sending those headers, standing in for an Envoy that sets them from a
// trusted source. Everything else stays: the route still keeps the headers
// from the provider.
//
// An early mutation extension goes when every mutation in it removes
// x-tokenmeter-* headers (by name or by prefix), as envoy.yaml's and Envoy
// Gateway's (from a ClientTrafficPolicy's earlyRequestHeaders) do; one that
// also does something else is an error, as is a config without one. A YAML
// config keeps every other byte (tests edit the result as text); a JSON one
// (Envoy Gateway's, from envoygateway.Static) is written again as it was,
// indented by two spaces.
func TrustClientHeaders(config []byte) ([]byte, error) {
	root, err := parseConfig(config)
	if err != nil {
		return nil, err
	}
	found := earlyStrips(root)
	if len(found) == 0 {
		return nil, fmt.Errorf("no early header mutation removing the client's %s headers in the config", HeaderPrefix)
	}
	for _, s := range found {
		if s.err != nil {
			return nil, s.err
		}
	}
	if len(root.Content) == 1 && root.Content[0].Style&yaml.FlowStyle != 0 {
		return trustedJSON(root, found)
	}
	return trustedYAML(config, found)
}

// earlyStrip is one early_header_mutation_extensions list, and which of its
// entries strip the client's headers.
type earlyStrip struct {
	parent    *yaml.Node // the mapping that holds the list
	key, list *yaml.Node
	strips    []int // indexes into list.Content
	err       error
}

// earlyStrips finds every early_header_mutation_extensions list (in either
// JSON spelling) that has an entry stripping the client's headers.
func earlyStrips(n *yaml.Node) []earlyStrip {
	var out []earlyStrip
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if !isField(k.Value, "early_header_mutation_extensions") || v.Kind != yaml.SequenceNode {
				continue
			}
			s := earlyStrip{parent: n, key: k, list: v}
			for j, ext := range v.Content {
				strips, err := stripsClientHeaders(ext)
				if err != nil && s.err == nil {
					s.err = err
				}
				if strips {
					s.strips = append(s.strips, j)
				}
			}
			if len(s.strips) > 0 || s.err != nil {
				out = append(out, s)
			}
		}
	}
	for _, c := range n.Content {
		out = append(out, earlyStrips(c)...)
	}
	return out
}

// stripsClientHeaders reports whether ext, one early header mutation
// extension, only removes x-tokenmeter-* headers. One that removes them and
// does something else is an error: dropping it would drop more than the
// strip, keeping it would keep the strip.
func stripsClientHeaders(ext *yaml.Node) (bool, error) {
	tc := fieldValue(ext, "typed_config")
	if t := mapValue(tc, "@type"); t == nil || !strings.HasSuffix(t.Value, earlyMutationType) {
		return false, nil
	}
	mutations := mapValue(tc, "mutations")
	if mutations == nil || len(mutations.Content) == 0 {
		return false, nil
	}
	ours := 0
	for _, m := range mutations.Content {
		if removesClientHeaders(m) {
			ours++
		}
	}
	switch ours {
	case 0:
		return false, nil
	case len(mutations.Content):
		return true, nil
	}
	return false, fmt.Errorf("early header mutation %q removes %s headers and does more: split it so the strip can be dropped alone",
		filterName(ext), HeaderPrefix)
}

// removesClientHeaders reports whether m, one HeaderMutation, removes
// x-tokenmeter-* headers: remove by name, or remove_on_match on a prefix
// or an exact name.
func removesClientHeaders(m *yaml.Node) bool {
	if r := mapValue(m, "remove"); r != nil {
		return strings.HasPrefix(strings.ToLower(r.Value), HeaderPrefix)
	}
	km := fieldValue(fieldValue(m, "remove_on_match"), "key_matcher")
	for _, kind := range []string{"prefix", "exact"} {
		if v := mapValue(km, kind); v != nil && strings.HasPrefix(strings.ToLower(v.Value), HeaderPrefix) {
			return true
		}
	}
	return false
}

// fieldValue is mapValue under either JSON spelling of a proto field.
func fieldValue(n *yaml.Node, snake string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if isField(n.Content[i].Value, snake) {
			return n.Content[i+1]
		}
	}
	return nil
}

// trustedJSON drops the strips from the parsed config and writes it as
// JSON again.
func trustedJSON(root *yaml.Node, found []earlyStrip) ([]byte, error) {
	for _, s := range found {
		var kept []*yaml.Node
		for j, e := range s.list.Content {
			if !slices.Contains(s.strips, j) {
				kept = append(kept, e)
			}
		}
		s.list.Content = kept
		if len(kept) == 0 {
			i := slices.Index(s.parent.Content, s.key)
			s.parent.Content = slices.Delete(s.parent.Content, i, i+2)
		}
	}
	var v any
	if err := root.Decode(&v); err != nil {
		return nil, fmt.Errorf("envoy config: %w", err)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("write envoy config: %w", err)
	}
	return out, nil
}

// trustedYAML cuts the strips' lines out of config, keeping every other
// byte: the list entries, or the whole key (with the comment lines right
// above it) when no entry is left. Only block style is cut; the result must
// parse and hold no strip.
func trustedYAML(config []byte, found []earlyStrip) ([]byte, error) {
	lines := strings.SplitAfter(string(config), "\n")
	cut := make([]bool, len(lines)+1) // by 1-based line number
	for _, s := range found {
		whole := len(s.strips) == len(s.list.Content)
		if s.parent.Style&yaml.FlowStyle != 0 || !whole && s.list.Style&yaml.FlowStyle != 0 {
			return nil, errors.New("the early header mutation is not in block style: cannot cut it out as lines")
		}
		if whole {
			first := s.key.Line
			for first > 1 && isCommentAt(lines[first-2], s.key.Column) {
				first--
			}
			markLines(cut, lines, first, s.key.Column+1, s.list)
			continue
		}
		for _, j := range s.strips {
			item := s.list.Content[j]
			markLines(cut, lines, item.Line, item.Column, item) // the item's keys start at its column
		}
	}
	var out strings.Builder
	for i, l := range lines {
		if !cut[i+1] {
			out.WriteString(l)
		}
	}
	result := []byte(out.String())
	root, err := parseConfig(result)
	if err != nil {
		return nil, fmt.Errorf("the config without its early header mutation: %w", err)
	}
	if len(earlyStrips(root)) > 0 || bytes.Equal(result, config) {
		return nil, errors.New("the early header mutation could not be cut out as lines")
	}
	return result, nil
}

// markLines marks lines first to the last line of last's subtree, and the
// lines after it indented to column from or deeper (continuations, trailing
// comments) up to a blank one.
func markLines(cut []bool, lines []string, first, from int, last *yaml.Node) {
	end := lastLine(last)
	for end < len(lines) && indentOf(lines[end]) >= from && strings.TrimSpace(lines[end]) != "" {
		end++
	}
	for l := first; l <= end; l++ {
		cut[l] = true
	}
}

// lastLine is the highest line any node under n starts on.
func lastLine(n *yaml.Node) int {
	end := n.Line
	for _, c := range n.Content {
		end = max(end, lastLine(c))
	}
	return end
}

// indentOf is the 1-based column of the line's first non-space character.
func indentOf(line string) int {
	return len(line) - len(strings.TrimLeft(line, " ")) + 1
}

// isCommentAt reports whether line is a comment starting at column col.
func isCommentAt(line string, col int) bool {
	return strings.HasPrefix(strings.TrimLeft(line, " "), "#") && indentOf(line) == col
}
