package dialect

import "testing"

func TestResolve(t *testing.T) {
	r := DefaultRegistry()
	chat, _ := r.ByName("openai_chat")
	routes := []Route{{Prefix: "/team-a/", Dialect: chat}, {Prefix: "/team-a/special/", Dialect: chat}}
	tests := []struct {
		name, byName, path string
		want               string
		ok                 bool
	}{
		{"suffix", "", "/v1/chat/completions", "openai_chat", true},
		{"explicit name wins over path", "openai_chat", "/whatever", "openai_chat", true},
		{"unknown explicit name", "nope", "/v1/chat/completions", "", false},
		{"configured prefix", "", "/team-a/generate", "openai_chat", true},
		{"longest prefix", "", "/team-a/special/x", "openai_chat", true},
		{"nothing matches", "", "/healthz", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := r.Resolve(tt.byName, routes, tt.path)
			if ok != tt.ok || (ok && d.Name() != tt.want) {
				t.Fatalf("got %v %v, want %q %v", d, ok, tt.want, tt.ok)
			}
		})
	}
	if n := r.Names(); len(n) == 0 || n[0] == "" {
		t.Fatalf("names %v", n)
	}
}
