package litellm_test

import (
	"os"
	"testing"

	"github.com/tokenmeter/tokenmeter/pricing"
)

// The importer's output is a catalog the v2 loader accepts: the golden
// conversion of the excerpt, which exercises every field kind, loads.
func TestGoldenCatalogLoads(t *testing.T) {
	data, err := os.ReadFile("testdata/expected_catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := pricing.Parse("expected_catalog.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() < 20 {
		t.Fatalf("only %d entries", c.Len())
	}
}
