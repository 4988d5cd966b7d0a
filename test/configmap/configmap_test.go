package configmap

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

var tsDir = regexp.MustCompile(`^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+$`)

// The layout after each write, as the kubelet leaves it: visible symlinks
// into ..data, ..data a symlink to the one timestamped directory, a dropped
// file's link gone.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	steps := []struct {
		name  string
		files map[string][]byte
		names []string // what dir holds after the step, besides ..data and the timestamped directory
	}{
		{"first", map[string][]byte{"a.yaml": []byte("a: 1\n"), "b.yaml": []byte("b: 1\n")}, []string{"a.yaml", "b.yaml"}},
		{"update", map[string][]byte{"a.yaml": []byte("a: 2\n"), "b.yaml": []byte("b: 1\n")}, []string{"a.yaml", "b.yaml"}},
		{"drop b", map[string][]byte{"a.yaml": []byte("a: 3\n")}, []string{"a.yaml"}},
	}
	var prev string
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := Write(dir, s.files); err != nil {
				t.Fatal(err)
			}
			data, err := os.Readlink(filepath.Join(dir, "..data"))
			if err != nil || !tsDir.MatchString(data) || data == prev {
				t.Fatalf("..data -> %q (%v), want a new timestamped directory (previous %q)", data, err, prev)
			}
			prev = data
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range entries {
				if e.Name() != "..data" && e.Name() != data {
					got = append(got, e.Name())
				}
			}
			if len(got) != len(s.names) {
				t.Fatalf("dir holds %v besides ..data and %s, want %v", got, data, s.names)
			}
			for i, name := range s.names {
				link, err := os.Readlink(filepath.Join(dir, name))
				if got[i] != name || err != nil || link != filepath.Join("..data", name) {
					t.Fatalf("%s -> %q (%v), want ..data/%s", got[i], link, err, name)
				}
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil || string(b) != string(s.files[name]) {
					t.Fatalf("%s reads %q (%v), want %q", name, b, err, s.files[name])
				}
			}
		})
	}
}

func TestWriteRefusesReservedNames(t *testing.T) {
	for _, name := range []string{"..data", "sub/file", ""} {
		if err := Write(t.TempDir(), map[string][]byte{name: nil}); err == nil {
			t.Errorf("%q accepted", name)
		}
	}
}
