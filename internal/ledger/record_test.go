package ledger

import (
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// A clone keeps its values when the caller reuses the record's slices.
func TestClone(t *testing.T) {
	r := &Record{RequestID: "a", Dimensions: attribution.Dimensions{Names: []string{"project"}, Values: []string{"alpha"}}}
	r.Usage.Raw = []usage.Field{{Name: "prompt_tokens", Value: 9}}
	c := r.Clone()
	r.Dimensions.Values[0], r.Usage.Raw[0].Value, r.RequestID = "mallory", 1, "b"
	if c.RequestID != "a" || c.Dimensions.Values[0] != "alpha" || c.Usage.Raw[0].Value != 9 || c.Dimensions.Names[0] != "project" {
		t.Fatalf("clone %+v changed with its source", c)
	}
}
