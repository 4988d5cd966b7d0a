package yamlwalk

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
)

// walkTop reads the top mapping of doc with keys a, b, c and n, each value
// as a number, and returns what was read and every problem, one a line.
func walkTop(t *testing.T, doc string) (read, problems string) {
	t.Helper()
	var errs cfgerr.List
	w := &Walker{File: "f.yaml", Errs: &errs}
	root, ok := w.Document([]byte(doc))
	var got []string
	if ok && root != nil {
		w.Mapping(root, "top", []string{"a", "b", "c", "n"}, func(_, v *yaml.Node, key string) {
			if s, ok := w.Scalar(v, key, "a number"); ok {
				got = append(got, key+"="+s)
			}
		})
	}
	return strings.Join(got, " "), errs.Error()
}

// Each problem a hand-written file can have, in the one wording every file
// (config, catalog, FX rates) reports it with.
func TestMapping(t *testing.T) {
	tests := []struct{ name, doc, read, want string }{
		{"valid", "a: 1\nb: 2\n", "top.a=1 top.b=2", ""},
		{"unknown key", "a: 1\nzz: 4\n", "top.a=1",
			"f.yaml:2: top.zz: unknown key; want one of a, b, c, n"},
		{"repeated key, read where first written", "a: 1\na: 3\n", "top.a=1",
			"f.yaml:2: top.a: repeated key; first at line 1"},
		{"non-scalar key", "? [x]\n: 1\nb: 2\n", "top.b=2",
			"f.yaml:1: top: want a plain key"},
		{"alias", "b: &x 2\nc: *x\n", "top.b=2",
			"f.yaml:2: top.c: YAML aliases are not supported; write the value out"},
		{"null value", "n: null\n", "",
			`f.yaml:1: top.n: "null": missing value; want a number`},
		{"empty value", "n:\n", "",
			"f.yaml:1: top.n: missing value; want a number"},
		{"not a scalar", "a: [1]\n", "",
			"f.yaml:1: top.a: want a number"},
		{"not a mapping", "[1]\n", "",
			"f.yaml:1: top: want a mapping with keys a, b, c, n"},
		{"a null document is empty", "~\n", "", ""},
		{"syntax error", "a: [\n", "",
			"f.yaml:1: not valid YAML: did not find expected node content"},
		{"second document", "a: 1\n---\nb: 2\n", "top.a=1",
			"f.yaml:2: a second YAML document; a file holds one, split others into their own files"},
		{"problems in the order written", "zz: 1\na: x\na: 2\nc: [1]\n", "top.a=x",
			"f.yaml:1: top.zz: unknown key; want one of a, b, c, n\n" +
				"f.yaml:3: top.a: repeated key; first at line 2\n" +
				"f.yaml:4: top.c: want a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read, problems := walkTop(t, tt.doc)
			if read != tt.read || problems != tt.want {
				t.Fatalf("read %q, problems\n%s\nwant %q, problems\n%s", read, problems, tt.read, tt.want)
			}
		})
	}
}

// Free-form keys, lists, and the paths they are reported at.
func TestPairsAndSequence(t *testing.T) {
	var errs cfgerr.List
	w := &Walker{File: "f.yaml", Errs: &errs}
	root, _ := w.Document([]byte("h: {x: 1, y: 2, x: 3}\nl: [a, {b: 1}]\nm: 1\n"))
	fs, ok := w.Fields(root, "", []string{"h", "l", "m"})
	if !ok || len(fs) != 3 {
		t.Fatalf("fields %v %v", fs, ok)
	}
	var got []string
	w.Pairs(fs["h"], "h", "a mapping of name to number", func(k, v *yaml.Node, key string) {
		got = append(got, key+"="+v.Value)
	})
	w.Sequence(fs["l"], "l", "a list of names", func(item *yaml.Node, key string) {
		if s, ok := w.Scalar(item, key, "a name"); ok {
			got = append(got, key+"="+s)
		}
	})
	w.Pairs(fs["m"], "m", "a mapping of name to number", nil)
	w.Sequence(fs["m"], "m", "a list of names", nil)
	if _, ok := w.Scalar(nil, "missing", "a number"); ok {
		t.Fatal("nil scalar accepted")
	}
	w.Missing(root, Join("top", "z"), "a number")
	if want := "h.x=1 h.y=2 l[0]=a"; strings.Join(got, " ") != want {
		t.Errorf("read %q, want %q", strings.Join(got, " "), want)
	}
	want := "f.yaml:1: h.x: repeated key; first at line 1\n" +
		"f.yaml:2: l[1]: want a name\n" +
		`f.yaml:3: m: "1": want a mapping of name to number` + "\n" +
		`f.yaml:3: m: "1": want a list of names` + "\n" +
		"f.yaml:1: top.z: missing; want a number"
	if errs.Error() != want {
		t.Errorf("problems\n%s\nwant\n%s", errs.Error(), want)
	}
}
