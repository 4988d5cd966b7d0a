package admin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// downloadHarness opens the statement view in a same-origin frame, presses
// its download buttons and records what the page saved: the file name and
// the first bytes of the blob it made (the page's own fetch, with its
// token handling, not a copy of it).
const downloadHarness = `<!doctype html><html><body><iframe id="f" width="1280" height="900"></iframe><pre id="result"></pre>
<script>
const f = document.getElementById("f");
f.src = "/?view=statement&month=2025-11&dimension=project&value=search";
const saved = [];
const poll = setInterval(async () => {
  const w = f.contentWindow, d = f.contentDocument;
  if (!d || !d.body || d.body.dataset.loaded !== "true") return;
  clearInterval(poll);
  const blobs = new Map();
  const make = w.URL.createObjectURL;
  w.URL.createObjectURL = b => { const u = make(b); blobs.set(u, b); return u; };
  w.HTMLAnchorElement.prototype.click = async function () {
    const b = blobs.get(this.href);
    saved.push({name: this.download, type: b.type, head: (await b.text()).slice(0, 400)});
  };
  d.getElementById("st-csv").click();
  d.getElementById("st-pdf").click();
  const done = setInterval(() => {
    if (saved.length < 2 && !d.getElementById("error").textContent) return;
    clearInterval(done);
    document.getElementById("result").textContent = JSON.stringify({saved, error: d.getElementById("error").textContent});
    document.body.dataset.done = "true";
  }, 50);
}, 50);
</script></body></html>`

// The statement view's buttons save the statement's CSV lines and its PDF,
// the same document /v1/usage/statement?format=pdf serves.
func TestConsoleDownloads(t *testing.T) {
	bin := chromium(t)
	mux := http.NewServeMux()
	mux.Handle("/", consoleServer(t, "badger"))
	mux.HandleFunc("GET /harness", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, downloadHarness)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	dom := headless(t, bin, srv.URL+"/harness", "1400,1000", "--dump-dom")
	m := regexp.MustCompile(`(?s)<pre id="result">(.*?)</pre>`).FindStringSubmatch(dom)
	if m == nil || !strings.Contains(dom, `data-done="true"`) {
		t.Fatalf("the harness did not finish:\n%s", dom)
	}
	var got struct {
		Saved []struct{ Name, Type, Head string }
		Error string
	}
	if err := json.Unmarshal([]byte(htmlUnescape(m[1])), &got); err != nil {
		t.Fatalf("%v: %s", err, m[1])
	}
	if got.Error != "" {
		t.Fatalf("the page shows an error: %s", got.Error)
	}
	byType := map[string]struct{ Name, Type, Head string }{}
	for _, s := range got.Saved {
		byType[strings.Split(s.Type, ";")[0]] = s
	}
	for _, c := range []struct{ ctype, name, head string }{
		{"text/csv", `^statement-2025-11\.csv$`, "2025-11,project,search,USD,openai,gpt-4o,2,0,1,0,200,100,0,0,40,0,3.75,3.75"},
		{"application/pdf", `^TM-202511-[A-Z0-9-]+\.pdf$`, "%PDF-"},
	} {
		s, ok := byType[c.ctype]
		if !ok {
			t.Errorf("no %s saved: %+v", c.ctype, got.Saved)
			continue
		}
		if !regexp.MustCompile(c.name).MatchString(s.Name) {
			t.Errorf("%s saved as %q, want %s", c.ctype, s.Name, c.name)
		}
		if !strings.Contains(s.Head, c.head) {
			t.Errorf("%s starts %q, want it to hold %q", c.ctype, s.Head, c.head)
		}
	}
}
