package litellm

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update-litellm", false, "rewrite testdata/expected_* from the current output")

var asOf = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func convertString(t *testing.T, in string) ([]byte, Report) {
	t.Helper()
	out, rep, err := Convert(strings.NewReader(in), Options{AsOf: asOf})
	if err != nil {
		t.Fatalf("Convert: %v\nreport:\n%s", err, rep.String())
	}
	return out, rep
}

// TestGolden converts the excerpt, which has an entry for every kind of
// field, and compares catalog and report byte for byte.
func TestGolden(t *testing.T) {
	in, err := os.ReadFile("testdata/model_prices_excerpt.json")
	if err != nil {
		t.Fatal(err)
	}
	out, rep := convertString(t, string(in))
	golden(t, "testdata/expected_catalog.yaml", out)
	golden(t, "testdata/expected_report.txt", []byte(rep.String()))
	if rep.Read != rep.Models+rep.Merged+rep.Skipped {
		t.Errorf("read %d != models %d + merged %d + skipped %d", rep.Read, rep.Models, rep.Merged, rep.Skipped)
	}
	again, _ := convertString(t, string(in))
	if !bytes.Equal(out, again) {
		t.Error("two conversions of the same input differ")
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update-litellm to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./pricing/litellm -update-litellm rewrites it); got:\n%s", path, got)
	}
}

// schemaV2 mirrors docs/catalog-schema.md. Decoding with KnownFields makes
// any key the schema does not define an error, as the loader will; prices
// are decoded as text, as the loader reads them.
type schemaV2 struct {
	Currency string `yaml:"currency"`
	Models   []struct {
		Name         string            `yaml:"name"`
		Provider     string            `yaml:"provider"`
		Source       string            `yaml:"source"`
		AsOf         string            `yaml:"as_of"`
		Prices       map[string]string `yaml:"prices"`
		Units        *unitsV2          `yaml:"units"`
		ContextTiers []struct {
			AboveInputTokens int64             `yaml:"above_input_tokens"`
			Prices           map[string]string `yaml:"prices"`
		} `yaml:"context_tiers"`
		ServiceTiers map[string]struct {
			Prices map[string]string `yaml:"prices"`
		} `yaml:"service_tiers"`
	} `yaml:"models"`
}

type unitsV2 struct {
	Request      string            `yaml:"request"`
	AudioSecond  string            `yaml:"audio_second"`
	Characters1k string            `yaml:"characters_1k"`
	Image        map[string]string `yaml:"image"`
}

func decodeV2(t *testing.T, data []byte) schemaV2 {
	t.Helper()
	var c schemaV2
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("output is not schema v2: %v\n%s", err, data)
	}
	return c
}

// TestGoldenIsSchemaV2 re-reads the golden catalog against the schema.
func TestGoldenIsSchemaV2(t *testing.T) {
	data, err := os.ReadFile("testdata/expected_catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := decodeV2(t, data)
	if c.Currency != "USD" || len(c.Models) == 0 {
		t.Fatalf("currency %q, %d models", c.Currency, len(c.Models))
	}
	valid := map[string]bool{}
	for _, n := range classNames {
		valid[n] = true
	}
	checkPrices := func(where string, p map[string]string) {
		for k, v := range p {
			if !valid[k] {
				t.Errorf("%s: unknown price class %q", where, k)
			}
			if strings.ContainsAny(v, "eE") {
				t.Errorf("%s.%s = %q: an exponent, which the catalog refuses", where, k, v)
			}
		}
	}
	for _, m := range c.Models {
		if m.Prices["input"] == "" || m.Prices["output"] == "" || m.Source == "" || m.AsOf != "2026-11-01" {
			t.Errorf("%s: missing a required key: %+v", m.Name, m)
		}
		checkPrices(m.Name+".prices", m.Prices)
		for _, tier := range m.ContextTiers {
			checkPrices(m.Name+".context_tiers", tier.Prices)
		}
		for name, tier := range m.ServiceTiers {
			if name != "batch" && name != "flex" && name != "priority" {
				t.Errorf("%s: unknown service tier %q", m.Name, name)
			}
			checkPrices(m.Name+".service_tiers."+name, tier.Prices)
		}
	}
}

// TestConversions pins the rules one entry at a time, in catalog terms.
func TestConversions(t *testing.T) {
	out, _ := convertString(t, `{
		"gpt-5": {"litellm_provider": "openai", "mode": "chat",
			"input_cost_per_token": 1.25e-06, "output_cost_per_token": 1e-05,
			"output_cost_per_token_priority": 2e-05, "output_cost_per_token_above_272k_tokens": 1.5e-05},
		"o-explicit": {"litellm_provider": "openai", "input_cost_per_token": 1e-06, "output_cost_per_token": 4e-06,
			"output_cost_per_reasoning_token": 8e-06, "output_cost_per_token_flex": 2e-06},
		"whisper-1": {"litellm_provider": "openai", "mode": "audio_transcription",
			"input_cost_per_second": 0.0001, "output_cost_per_second": 0.0002},
		"speaker": {"litellm_provider": "openai", "mode": "audio_speech",
			"input_cost_per_second": 0.0001, "output_cost_per_second": 0.0002, "input_cost_per_character": 3e-05},
		"512-x-512/dall-e-2": {"litellm_provider": "openai", "mode": "image_generation", "input_cost_per_pixel": 6.8e-08},
		"hd/1024-x-1024/img": {"litellm_provider": "openai", "mode": "image_generation", "output_cost_per_image": 0.08}
	}`)
	c := decodeV2(t, out)
	got := map[string]int{}
	for i, m := range c.Models {
		got[m.Name] = i
	}
	model := func(name string) int {
		i, ok := got[name]
		if !ok {
			t.Fatalf("no model %s in\n%s", name, out)
		}
		return i
	}
	gpt5 := c.Models[model("gpt-5")]
	// Without a reasoning rate, LiteLLM bills reasoning at the output rate
	// in force; each tier that changes output says so.
	if p := gpt5.ServiceTiers["priority"].Prices; p["output"] != "20" || p["reasoning"] != "20" {
		t.Errorf("gpt-5 priority = %v", p)
	}
	if p := gpt5.ContextTiers[0]; p.AboveInputTokens != 272000 || p.Prices["reasoning"] != "15" {
		t.Errorf("gpt-5 context tier = %+v", p)
	}
	if p := c.Models[model("o-explicit")]; p.Prices["reasoning"] != "8" || p.ServiceTiers["flex"].Prices["reasoning"] != "" {
		t.Errorf("an explicit reasoning rate is the base's, tiers keep it: %+v", p)
	}
	if u := c.Models[model("whisper-1")].Units; u == nil || u.AudioSecond != "0.0001" {
		t.Errorf("transcription bills the input audio: %+v", u)
	}
	if u := c.Models[model("speaker")].Units; u == nil || u.AudioSecond != "0.0002" || u.Characters1k != "0.03" {
		t.Errorf("speech bills the output audio and input characters × 1000: %+v", u)
	}
	// 6.8e-08 × 512 × 512 = 0.017825792 exactly.
	if u := c.Models[model("dall-e-2")].Units; u == nil || u.Image["512x512"] != "0.017825792" {
		t.Errorf("per-pixel price × pixels: %+v", u)
	}
	if u := c.Models[model("img")].Units; u == nil || u.Image["1024x1024/hd"] != "0.08" {
		t.Errorf("quality/size key: %+v", u)
	}
}

func TestDuplicatesKeepTheFirst(t *testing.T) {
	out, rep := convertString(t, `{
		"GPT-4o": {"litellm_provider": "openai", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},
		"openai/gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 9e-06, "output_cost_per_token": 9e-06},
		"azure/gpt-4o": {"litellm_provider": "azure", "input_cost_per_token": 3e-06, "output_cost_per_token": 4e-06}
	}`)
	c := decodeV2(t, out)
	if len(c.Models) != 2 || c.Models[0].Provider != "azure" || c.Models[1].Name != "GPT-4o" || c.Models[1].Prices["input"] != "1" {
		t.Errorf("models = %+v", c.Models)
	}
	if rep.Skipped != 1 || !strings.Contains(rep.String(), `openai/gpt-4o: same provider "openai" and name "GPT-4o" as the earlier entry "GPT-4o"`) {
		t.Errorf("report:\n%s", rep.String())
	}
}

func TestConvertErrors(t *testing.T) {
	tests := []struct {
		name, in string
		opts     Options
		want     string
	}{
		{"no as_of", `{}`, Options{}, "AsOf is required"},
		{"not an object", `[1, 2]`, Options{AsOf: asOf}, "want a JSON object"},
		{"not JSON", `{"a": `, Options{AsOf: asOf}, "reading JSON"},
		{"trailing data", `{} {}`, Options{AsOf: asOf}, "data after the top-level object"},
		{"nothing usable", `{"sample_spec": {}, "x": {"mode": "search"}}`, Options{AsOf: asOf}, ErrNoModels.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := Convert(strings.NewReader(tt.in), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) || out != nil {
				t.Fatalf("Convert = %q, %v; want an error with %q", out, err, tt.want)
			}
		})
	}
	_, _, err := Convert(strings.NewReader(`{"x": {"mode": "search"}}`), Options{AsOf: asOf})
	if !errors.Is(err, ErrNoModels) {
		t.Errorf("err = %v, want ErrNoModels", err)
	}
}

func TestSourceNote(t *testing.T) {
	in := `{"a": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06},
		"b": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "source": "https://example.com/b"}}`
	out, _, err := Convert(strings.NewReader(in), Options{AsOf: asOf, SourceNote: "(commit 0123abc)"})
	if err != nil {
		t.Fatal(err)
	}
	c := decodeV2(t, out)
	if c.Models[0].Source != DefaultSource+" (commit 0123abc)" || c.Models[1].Source != "https://example.com/b" {
		t.Errorf("sources = %q, %q", c.Models[0].Source, c.Models[1].Source)
	}
}

// TestLoad reads a file the way a config does; without a date it takes the
// file's modification date.
func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prices.json")
	err := os.WriteFile(path, []byte(`{"m": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2026, 3, 4, 23, 30, 0, 0, time.UTC)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	out, rep, err := Load(path, time.Time{})
	if err != nil || rep.Models != 1 {
		t.Fatalf("Load = %v, %+v", err, rep)
	}
	if c := decodeV2(t, out); c.Models[0].AsOf != "2026-03-04" {
		t.Errorf("as_of = %s, want the modification date", c.Models[0].AsOf)
	}
	out, _, _ = Load(path, asOf)
	if c := decodeV2(t, out); c.Models[0].AsOf != "2026-11-01" {
		t.Errorf("as_of = %s, want the given date", c.Models[0].AsOf)
	}
	if _, _, err := Load(filepath.Join(t.TempDir(), "missing.json"), asOf); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
