package dialect

import (
	"bytes"
	"cmp"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// requestFixture is the request a dialect's recorded responses answer. It
// lives with them: testdata/<dialect>/request.json, and
// testdata/<dialect>/<case>/request.json for a case that answers another
// request (a streaming path, another model). Tests outside this package
// read it too (internal/metrics replays every fixture after its request),
// so no test elsewhere has to know the dialects by name.
type requestFixture struct {
	file              string // the request.json it was read from
	dialect           string // the dialect whose testdata holds it
	path, contentType string
	body              []byte
}

// json reports whether the body is JSON rather than a multipart form.
func (r requestFixture) json() bool { return r.contentType == "application/json" }

// readRequestFixture reads a request.json: "path", "body" sent as written
// (compacted) or, when it is a JSON string, as that string's bytes (a
// multipart form), and "content_type", application/json when absent.
func readRequestFixture(t *testing.T, file string) requestFixture {
	t.Helper()
	var r struct {
		Path        string          `json:"path"`
		ContentType string          `json:"content_type"`
		Body        json.RawMessage `json:"body"`
	}
	dec := json.NewDecoder(bytes.NewReader(readFile(t, filepath.Dir(file), filepath.Base(file))))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil || r.Path == "" || len(r.Body) == 0 {
		t.Fatalf("%s: want a path and a body: %v", file, err)
	}
	rf := requestFixture{file: file, path: r.Path, contentType: cmp.Or(r.ContentType, "application/json")}
	rel, _ := filepath.Rel("testdata", file)
	rf.dialect, _, _ = strings.Cut(filepath.ToSlash(rel), "/")
	var raw string
	if json.Unmarshal(r.Body, &raw) == nil {
		rf.body = []byte(raw)
		return rf
	}
	var body bytes.Buffer
	if err := json.Compact(&body, r.Body); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	rf.body = body.Bytes()
	return rf
}

// requestFixtures reads every request.json under testdata, each dialect's
// and each case's.
func requestFixtures(t *testing.T) []requestFixture {
	t.Helper()
	var out []requestFixture
	for _, pattern := range []string{"testdata/*/request.json", "testdata/*/*/request.json"} {
		files, err := filepath.Glob(filepath.FromSlash(pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			out = append(out, readRequestFixture(t, f))
		}
	}
	return out
}

// Every registered dialect keeps beside its fixtures the request they
// answer, and each request.json is one its dialect is reached by (the
// registry routes its path there) and reads strictly, with a model. The
// lenient test varies each JSON one; the cost agreement test in
// internal/metrics replays every fixture after it.
func TestEveryDialectHasItsRequest(t *testing.T) {
	r := DefaultRegistry()
	has := map[string]bool{}
	for _, rf := range requestFixtures(t) {
		if filepath.Dir(rf.file) == filepath.Join("testdata", rf.dialect) {
			has[rf.dialect] = true
		}
		t.Run(filepath.ToSlash(rf.file), func(t *testing.T) {
			d, ok := r.ForPath(rf.path)
			if !ok || d.Name() != rf.dialect {
				t.Fatalf("%s routes to %v (%v), want %s", rf.path, d, ok, rf.dialect)
			}
			req, _, err := d.ParseRequest(rf.body, RequestOptions{Path: rf.path})
			if err != nil || req.Model == "" || req.Lenient != 0 {
				t.Fatalf("%s: read as %+v, %v; want a strict body with a model", rf.body, req, err)
			}
		})
	}
	for _, name := range r.Names() {
		if !has[name] {
			t.Errorf("dialect %s has no testdata/%s/request.json", name, name)
		}
	}
}
