package dialect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// This file runs recorded fixtures against any dialect: every case under
// testdata/<dialect name>/ is decoded whole, split in two at every byte
// offset, and in random chunks, and must give the same outcome each time.
// It reuses fixture, outcome, readFile and randomChunks from
// openai_chat_test.go; loadFixtures there is loadDialectFixtures for
// "openai_chat".

// dialectFixture is a fixture with the response headers its meta.json may
// list under "headers" (lower-case names to values), for dialects that read
// usage from headers (Bedrock's InvokeModel). meta.json without them is
// read as before.
type dialectFixture struct {
	fixture
	headers map[string]string
}

// caseDirs lists the cases under testdata/<name>: its directories. Files
// beside them are the dialect's own (request.json).
func caseDirs(t *testing.T, name string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", name, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, p := range paths {
		if fi, err := os.Stat(p); err != nil {
			t.Fatal(err)
		} else if fi.IsDir() {
			dirs = append(dirs, p)
		}
	}
	return dirs
}

func loadDialectFixtures(t *testing.T, name string) []dialectFixture {
	t.Helper()
	dirs := caseDirs(t, name)
	if len(dirs) == 0 {
		t.Fatalf("no fixtures for %s", name)
	}
	var fs []dialectFixture
	for _, dir := range dirs {
		f := dialectFixture{fixture: fixture{name: filepath.Base(dir)}}
		f.response = readFile(t, dir, "response")
		if err := json.Unmarshal(readFile(t, dir, "meta.json"), &f.meta); err != nil {
			t.Fatalf("%s: meta.json: %v", f.name, err)
		}
		var h struct {
			Headers map[string]string `json:"headers"`
		}
		if err := json.Unmarshal(readFile(t, dir, "meta.json"), &h); err != nil {
			t.Fatalf("%s: meta.json: %v", f.name, err)
		}
		f.headers = h.Headers
		dec := json.NewDecoder(bytes.NewReader(readFile(t, dir, "expected.json")))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f.want); err != nil {
			t.Fatalf("%s: expected.json: %v", f.name, err)
		}
		fs = append(fs, f)
	}
	return fs
}

// decodeWith feeds chunks to a fresh decoder of d.
func (f *dialectFixture) decodeWith(d Dialect, chunks [][]byte) outcome {
	resp := Response{Status: f.meta.Status, ContentType: f.meta.ContentType, ContentEncoding: f.meta.ContentEncoding,
		Header: func(name string) string { return f.headers[name] }}
	dec := d.NewDecoder(resp, 64<<10)
	for _, c := range chunks {
		_ = dec.Feed(c)
	}
	return outcomeOf(dec.Finish(f.meta.Complete == nil || *f.meta.Complete))
}

func runFixtures(t *testing.T, d Dialect) {
	t.Helper()
	for _, f := range loadDialectFixtures(t, d.Name()) {
		t.Run(f.name, func(t *testing.T) {
			check := func(how string, got outcome) {
				t.Helper()
				if !reflect.DeepEqual(got, f.want) {
					t.Fatalf("%s:\ngot  %+v\nwant %+v", how, got, f.want)
				}
			}
			check("whole", f.decodeWith(d, [][]byte{f.response}))
			for i := 0; i <= len(f.response); i++ {
				check(fmt.Sprintf("split at %d", i), f.decodeWith(d, [][]byte{f.response[:i], f.response[i:]}))
			}
			r := rand.New(rand.NewPCG(1, uint64(len(f.response))))
			for i := range 200 {
				check(fmt.Sprintf("random chunks %d", i), f.decodeWith(d, randomChunks(f.response, 1+i%64, r)))
			}
		})
	}
}
