package envoy

import (
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/config"
)

// numbersUnder collects every integer value of key anywhere in a YAML tree.
func numbersUnder(t *testing.T, file, key string) []int64 {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var root any
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	var out []int64
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if n, ok := c.(int); ok && k == key {
					out = append(out, int64(n))
				}
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(root)
	return out
}

// Envoy's buffer limits and tokenmeter's body limit agree: Envoy holds a
// streamed request body until the gate answers and stops reading the
// client at its limit, so tokenmeter's limit (past which it answers 413)
// must be below it, by the documented headroom. Otherwise a large body
// stalls until message_timeout and the client gets a 504.
func TestBufferLimitsAgree(t *testing.T) {
	want := int64(config.DefaultMaxMessageBytes + config.EnvoyBufferHeadroom)
	for _, tt := range []struct{ file, key string }{
		{"envoy.yaml", "per_connection_buffer_limit_bytes"},
		{"envoy.yaml", "max_receive_message_length"},
		{"inline-filter.yaml", "max_receive_message_length"},
		{"upstream-filter.yaml", "max_receive_message_length"},
	} {
		got := numbersUnder(t, filepath.Join(Dir(), tt.file), tt.key)
		if len(got) == 0 {
			t.Errorf("%s sets no %s", tt.file, tt.key)
		}
		for _, n := range got {
			if n != want {
				t.Errorf("%s: %s is %d, want max_message_bytes %d + headroom %d = %d",
					tt.file, tt.key, n, config.DefaultMaxMessageBytes, config.EnvoyBufferHeadroom, want)
			}
		}
	}
	demo := numbersUnder(t, filepath.Join(Dir(), "..", "demo", "tokenmeter.yaml"), "max_message_bytes")
	if len(demo) != 1 || demo[0]+config.EnvoyBufferHeadroom != want {
		t.Errorf("demo/tokenmeter.yaml max_message_bytes %v, want %d", demo, config.DefaultMaxMessageBytes)
	}
}
