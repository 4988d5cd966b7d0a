package otelmetrics

import (
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/dialect"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// Every registered dialect has its gen_ai.operation.name, and every
// dialect's provider its gen_ai.provider.name: a new dialect cannot slip
// out under its internal name unnoticed.
func TestEveryDialectIsMapped(t *testing.T) {
	reg := dialect.DefaultRegistry()
	// No well-known value: exported as tokenmeter names it.
	custom := map[string]bool{"ollama": true}
	for _, name := range reg.Names() {
		if _, ok := operations[name]; !ok {
			t.Errorf("dialect %s has no gen_ai.operation.name", name)
		}
		d, _ := reg.ByName(name)
		if _, ok := providers[d.Provider()]; !ok && !custom[d.Provider()] {
			t.Errorf("provider %s (dialect %s) has no gen_ai.provider.name", d.Provider(), name)
		}
	}
	for name := range operations {
		if _, ok := reg.ByName(name); !ok {
			t.Errorf("operations maps %s, which is not a registered dialect", name)
		}
	}
}

func TestNames(t *testing.T) {
	tests := []struct{ in, op, provider string }{
		{"openai_chat", "chat", "openai"},
		{"anthropic_messages", "chat", "anthropic"},
		{"bedrock_converse_stream", "chat", "bedrock"},
		{"gemini", "generate_content", "google"},
		{"openai_embeddings", "embeddings", "openai"},
		{"ollama_generate", "text_completion", "ollama"},
		{"", "unknown", ""},
	}
	want := map[string]string{"openai": "openai", "anthropic": "anthropic", "bedrock": "aws.bedrock",
		"google": "gcp.gemini", "ollama": "ollama", "": "", "azure": "azure.ai.openai", "vertex": "gcp.vertex_ai"}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := operationName(tt.in); got != tt.op {
				t.Errorf("operationName(%q) = %q, want %q", tt.in, got, tt.op)
			}
			if got := providerName(tt.provider); got != want[tt.provider] {
				t.Errorf("providerName(%q) = %q, want %q", tt.provider, got, want[tt.provider])
			}
		})
	}
}

// Cache reads and writes are input; reasoning is output. Every class is
// listed, so a new class must be placed.
func TestTokenTypeOfEveryClass(t *testing.T) {
	want := map[usage.Class]bool{
		usage.Input: false, usage.CacheRead: false, usage.CacheWrite: false, usage.CacheWrite1h: false,
		usage.AudioInput: false, usage.ImageInput: false,
		usage.Output: true, usage.Reasoning: true, usage.AudioOutput: true, usage.ImageOutput: true,
	}
	for c := usage.Class(0); c < usage.NumClasses; c++ {
		out, ok := want[c]
		if !ok {
			t.Errorf("class %s: say whether it is input or output", c)
			continue
		}
		if isOutput(c) != out {
			t.Errorf("isOutput(%s) = %v, want %v", c, isOutput(c), out)
		}
	}
}

func TestErrorType(t *testing.T) {
	want := map[ledger.Outcome]string{
		ledger.OK: "", ledger.Estimated: "", ledger.Unobserved: "", ledger.Unmetered: "",
		ledger.Partial: "partial", ledger.ProviderError: "provider_error", ledger.Denied: "denied",
		ledger.UpstreamError: "upstream_error", ledger.GateTimeout: "gate_timeout",
	}
	for _, o := range ledger.Outcomes {
		w, ok := want[o]
		if !ok {
			t.Errorf("outcome %s: say whether it is an error", o)
		}
		if got := errorType(o); got != w {
			t.Errorf("errorType(%s) = %q, want %q", o, got, w)
		}
	}
}
