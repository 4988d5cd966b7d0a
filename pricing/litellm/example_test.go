package litellm_test

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tokenmeter/tokenmeter/pricing/litellm"
)

// Costs per token become prices per million tokens, exactly; the long
// context price becomes a context tier.
func ExampleConvert() {
	in := `{
		"claude-sonnet-4-20250514": {
			"litellm_provider": "anthropic", "mode": "chat", "max_tokens": 64000,
			"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
			"cache_read_input_token_cost": 3e-07,
			"input_cost_per_token_above_200k_tokens": 6e-06
		}
	}`
	catalog, report, err := litellm.Convert(strings.NewReader(in), litellm.Options{
		AsOf: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, body, _ := strings.Cut(string(catalog), "\n\n") // skip the header comment
	fmt.Print(body)
	fmt.Fprint(os.Stdout, report.String())
	// Output:
	// currency: USD
	// models:
	//   - name: claude-sonnet-4-20250514
	//     provider: anthropic
	//     source: litellm model_prices_and_context_window.json
	//     as_of: 2026-11-01
	//     prices: {input: 3, cache_read: 0.3, output: 15}
	//     context_tiers:
	//       - above_input_tokens: 200000
	//         prices: {input: 6}
	// litellm import: 1 entries read: 1 models written, 0 image variants merged, 0 entries skipped
	//
	// fields not written (field, entries, reason):
	//   max_tokens     1  no counterpart
}
