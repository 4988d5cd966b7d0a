package envoy

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestRewriteAndWithoutExtProc(t *testing.T) {
	base, err := os.ReadFile(filepath.Join(Dir(), "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got := Rewrite(base, Ports{Listener: 1, Admin: 2, Upstream: 3, ExtProc: 4})
	for _, want := range []string{"port_value: 1 }", "port_value: 2 }", "port_value: 3 }", "port_value: 4 }"} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("rewritten config lacks %q", want)
		}
	}
	for _, old := range []string{"10000", "9901", "8081", "50051"} {
		if bytes.Contains(got, []byte("port_value: "+old)) {
			t.Errorf("port %s not rewritten", old)
		}
	}
	bare, err := WithoutExtProc(base)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(bare, []byte("filters.http.ext_proc.v3")) || bytes.Contains(bare, []byte(GateFilter)) ||
		!bytes.Contains(bare, []byte("envoy.filters.http.router")) || !bytes.Contains(bare, []byte("/team-x/generate")) {
		t.Fatalf("baseline config:\n%s", bare)
	}
	if _, err := WithoutExtProc(bare); err == nil {
		t.Fatal("a config without ext_proc must be an error")
	}

	// Inline: one filter where the gate was, its per-route override renamed.
	inline, err := Inline(base)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(inline, []byte("name: "+GateFilter)) || bytes.Contains(inline, []byte("name: "+ObserverFilter)) ||
		bytes.Count(inline, []byte("name: "+InlineFilter)) != 1 || !bytes.Contains(inline, []byte(InlineFilter+":")) ||
		bytes.Contains(inline, []byte(GateFilter+":")) {
		t.Fatalf("inline config:\n%s", inline)
	}
	if _, err := Inline(bare); err == nil {
		t.Fatal("a config without the gate must be an error")
	}
}
