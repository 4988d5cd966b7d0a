package dialect

import "testing"

func TestRegistryForPath(t *testing.T) {
	tests := []struct {
		path string
		want string // dialect name; "" for no match
	}{
		{"/v1/chat/completions", "openai_chat"},
		{"/v1/chat/completions?api-version=2024-10-21", "openai_chat"},
		{"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "azure_openai_chat"},
		{"/chat/completions", "openai_chat"},
		{"/api/v1/chat/completions#frag", "openai_chat"},
		{"/v1/completions", "openai_completions"},
		{"/v1/chat/completions/", ""},
		{"/v1/xchat/completions", ""},
		{"/v1/chat/completions/extra", ""},
		{"/v1/models?next=/chat/completions", ""},
		{"", ""},
		{"/v1/messages", "anthropic_messages"},
		{"/v1/messages?beta=true", "anthropic_messages"},
		{"/anthropic/v1/messages", "anthropic_messages"},
		{"/v1/messages/count_tokens", ""},
		{"/v1/messages/batches", ""},
		{"/v1/messages/batches/msgbatch_01/results", ""},
		{"/v1/messages/", ""},
		{"/v1/threads/thread_abc/messages", ""},
		{"/v1/xmessages", ""},
	}
	r := DefaultRegistry()
	for _, tt := range tests {
		d, ok := r.ForPath(tt.path)
		got := ""
		if ok {
			got = d.Name()
		}
		if got != tt.want {
			t.Errorf("ForPath(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}
