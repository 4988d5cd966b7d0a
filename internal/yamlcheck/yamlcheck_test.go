package yamlcheck

import (
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
)

func TestChecker(t *testing.T) {
	var root yaml.Node
	if err := yaml.Unmarshal([]byte("a: 1\nb: &x 2\nc: *x\na: 3\nzz: 4\nn: null\n"), &root); err != nil {
		t.Fatal(err)
	}
	var errs cfgerr.List
	c := &Checker{File: "f.yaml", Errs: &errs}
	fs, ok := c.Fields(root.Content[0], "top", []string{"a", "b", "c", "n"})
	if !ok || fs["a"].Value != "1" {
		t.Fatalf("fields %v %v", fs, ok)
	}
	c.Scalar(fs["c"], "top.c", "a number")
	c.Scalar(fs["n"], "top.n", "a number")
	if _, ok := c.Scalar(nil, "top.missing", "a number"); ok {
		t.Fatal("nil scalar accepted")
	}
	want := []string{
		`f.yaml:4: top.a: repeated key; first at line 1`,
		`f.yaml:5: top.zz: unknown key; want one of a, b, c, n`,
		`f.yaml:3: top.c: YAML aliases are not supported; write the value out`,
		`f.yaml:6: top.n: "null": missing value; want a number`,
	}
	if len(errs) != len(want) {
		t.Fatalf("errors:\n%v", errs)
	}
	for i, w := range want {
		if errs[i].Error() != w {
			t.Errorf("error %d: %q, want %q", i, errs[i].Error(), w)
		}
	}
}
