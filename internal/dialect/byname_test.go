package dialect

import "testing"

func TestResolve(t *testing.T) {
	r := DefaultRegistry()
	chat, _ := r.ByName("openai_chat")
	anth, _ := r.ByName("anthropic_messages")
	routes := []Route{{Prefix: "/team-a/", Dialect: chat}, {Prefix: "/team-a/special/", Dialect: anth},
		{Host: "api.groq.com", Dialect: chat}, {Host: "*.anthropic.internal", Prefix: "/", Dialect: anth}}
	tests := []struct {
		name, byName, host, path string
		want                     string
		ok                       bool
	}{
		{"suffix", "", "localhost", "/v1/chat/completions", "openai_chat", true},
		{"explicit name wins over path", "openai_chat", "", "/whatever", "openai_chat", true},
		{"unknown explicit name", "nope", "", "/v1/chat/completions", "", false},
		{"configured prefix", "", "", "/team-a/generate", "openai_chat", true},
		{"longest prefix", "", "", "/team-a/special/x", "anthropic_messages", true},
		// Groq's path looks like Azure's v1 path; its host says otherwise.
		{"host beats the path suffix", "", "api.groq.com:443", "/openai/v1/chat/completions", "openai_chat", true},
		{"wildcard host", "", "eu.anthropic.internal", "/v1/messages", "anthropic_messages", true},
		{"wildcard needs a subdomain", "", "anthropic.internal", "/x", "", false},
		{"host is case-insensitive", "", "API.GROQ.COM", "/anything", "openai_chat", true},
		{"nothing matches", "", "localhost", "/healthz", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := r.Resolve(tt.byName, routes, tt.host, tt.path)
			if ok != tt.ok || (ok && d.Name() != tt.want) {
				t.Fatalf("got %v %v, want %q %v", d, ok, tt.want, tt.ok)
			}
		})
	}
	if n := r.Names(); len(n) == 0 || n[0] == "" {
		t.Fatalf("names %v", n)
	}
}
