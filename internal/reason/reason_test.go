package reason

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestNote(t *testing.T) {
	for _, tt := range []struct {
		cur, r, want Reason
	}{
		{"", "", ""},
		{"", NoUsage, NoUsage},
		{MalformedJSON, "", MalformedJSON},
		// Equal ranks keep the first noted.
		{MalformedJSON, Truncated, MalformedJSON},
		{StoreUnavailable, MalformedJSON, StoreUnavailable},
		{UnpricedModel, UnpricedUsage, UnpricedModel},
		// The higher rank wins, in either order.
		{NoUsage, Truncated, Truncated},
		{Truncated, NoUsage, Truncated},
		{MalformedJSON, StreamCut, StreamCut},
		{StreamCut, FallbackPrice, FallbackPrice},
		{FallbackPrice, NoObserver, NoObserver},
		{NoObserver, UnpricedModel, UnpricedModel},
		{UnpricedUsage, StreamCut, UnpricedUsage},
	} {
		if got := Note(tt.cur, tt.r); got != tt.want {
			t.Errorf("Note(%q, %q) = %q, want %q", tt.cur, tt.r, got, tt.want)
		}
	}
}

func TestOf(t *testing.T) {
	if got := Of(fmt.Errorf("gemini: chunk 2: %w", Truncated)); got != Truncated {
		t.Fatalf("Of = %q", got)
	}
	if got := Of(errors.New("plain")); got != "" {
		t.Fatalf("Of(plain) = %q", got)
	}
	if !errors.Is(fmt.Errorf("x: %w", ProviderError), ProviderError) {
		t.Fatal("a wrapped reason is not errors.Is")
	}
}

var reasonRow = regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| (-?\\d|with its outcome) \\| [^|]*\\S[^|]* \\|$")

// TestDocsReasonTable holds docs/ledger.md's table to the vocabulary: every
// reason once, in All's order, with its precedence.
func TestDocsReasonTable(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "ledger.md"))
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, m := range reasonRow.FindAllStringSubmatch(string(doc), -1) {
		got = append(got, m[1]+" "+m[2])
	}
	for _, r := range All {
		p := strconv.Itoa(Rank(r))
		if Rank(r) < 0 {
			p = "with its outcome"
		}
		want = append(want, string(r)+" "+p)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("docs/ledger.md's reason table:\n%s\nwant (reason, precedence):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
