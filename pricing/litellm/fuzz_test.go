package litellm

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/money"
)

// FuzzConvert: no input makes Convert panic, and whatever it writes is YAML
// whose every model has the keys the schema requires.
func FuzzConvert(f *testing.F) {
	// One seed per model of the excerpt, not the whole 11 KB file: the
	// fuzzer minimizes every input that finds new coverage, and minimizing
	// inputs grown from the whole file held this target to ~150 execs/s
	// (TestGolden converts the whole file).
	excerpt, err := os.ReadFile("testdata/model_prices_excerpt.json")
	if err != nil {
		f.Fatal(err)
	}
	var models map[string]json.RawMessage
	if err := json.Unmarshal(excerpt, &models); err != nil {
		f.Fatal(err)
	}
	for _, name := range slices.Sorted(maps.Keys(models)) {
		f.Add([]byte(`{"` + name + `": ` + string(models[name]) + `}`))
	}
	for _, s := range []string{
		`{}`, `[]`, `null`, `{"a": 1}`, `{"a": {"input_cost_per_token": 1e999999999, "output_cost_per_token": 1}}`,
		`{"hd/1-x-1/m": {"mode": "image_generation", "input_cost_per_pixel": 1e-3}}`,
		`{"m": {"input_cost_per_token": "1e-6", "output_cost_per_token": 0, "input_cost_per_token_above_1k_tokens": 2e-6}}`,
		`{"a/b": {"litellm_provider": "a", "mode": "audio_speech", "input_cost_per_character": 1e-6}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, rep, err := Convert(bytes.NewReader(in), Options{AsOf: asOf})
		_ = rep.String()
		if rep.Read != rep.Models+rep.Merged+rep.Skipped {
			t.Fatalf("read %d != %d + %d + %d", rep.Read, rep.Models, rep.Merged, rep.Skipped)
		}
		if err != nil {
			return
		}
		c := decodeV2(t, out)
		for _, m := range c.Models {
			if m.Name == "" || m.Source == "" || m.AsOf == "" || m.Prices["input"] == "" || m.Prices["output"] == "" {
				t.Fatalf("model lacks a required key: %+v", m)
			}
			prices := []map[string]string{m.Prices}
			for _, tier := range m.ContextTiers {
				prices = append(prices, tier.Prices)
			}
			for _, tier := range m.ServiceTiers {
				prices = append(prices, tier.Prices)
			}
			if m.Units != nil {
				prices = append(prices, m.Units.Image, map[string]string{"request": m.Units.Request,
					"audio_second": m.Units.AudioSecond, "characters_1k": m.Units.Characters1k})
			}
			for _, p := range prices {
				for k, v := range p {
					if _, err := money.Parse(v); v != "" && err != nil {
						t.Fatalf("%s: %s = %q is not a catalog decimal: %v", m.Name, k, v, err)
					}
				}
			}
		}
	})
}
