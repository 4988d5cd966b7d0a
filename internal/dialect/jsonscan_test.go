package dialect

import (
	"testing"

	"github.com/tidwall/gjson"
)

func TestStringBytes(t *testing.T) {
	for _, raw := range []string{
		`""`, `"abc"`, `"a\nb\t\"\\\/"`, `"caf\u00e9"`, `"\u20ac"`, `"\ud83d\ude00"`,
		`"\ud800"`, `"\udc00x"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"é😀"`, `"\uABCD\uabcd"`,
	} {
		if got, want := stringBytes(raw), int64(len(gjson.Parse(raw).Str)); got != want {
			t.Errorf("stringBytes(%s) = %d, gjson decodes %d bytes", raw, got, want)
		}
	}
	for _, raw := range []string{``, `1`, `null`, `{}`, `"`} {
		if n := stringBytes(raw); n != 0 {
			t.Errorf("stringBytes(%s) = %d, want 0", raw, n)
		}
	}
}

// FuzzJSONScan holds the raw iterators to gjson's reading of valid JSON.
func FuzzJSONScan(f *testing.F) {
	f.Add(`{"a":1,"b":[1,{"c":"]}"}],"d\"":"x\\","e":{},"f":[],"g":null,"h":-1.5e3}`)
	f.Add(` [ "a\u00e9" , {"k" : "v"} , [ ] , true ] `)
	f.Add(`{"k\u0041":"\ud83d\ude00"}`)
	f.Fuzz(func(t *testing.T, s string) {
		if !gjson.Valid(s) {
			newMembers(s).nextAll()
			newElements(s).nextAll()
			_ = stringBytes(s)
			return
		}
		root := gjson.Parse(s)
		var want, got []string
		root.ForEach(func(k, v gjson.Result) bool {
			want = append(want, k.Str, v.Raw)
			if v.Type == gjson.String && stringBytes(v.Raw) != int64(len(v.Str)) {
				t.Fatalf("stringBytes(%s) = %d, gjson decodes %d bytes", v.Raw, stringBytes(v.Raw), len(v.Str))
			}
			return true
		})
		switch {
		case root.IsObject():
			m := newMembers(s)
			for k, v, ok := m.next(); ok; k, v, ok = m.next() {
				got = append(got, k, v)
			}
		case root.IsArray():
			a := newElements(s)
			for v, ok := a.next(); ok; v, ok = a.next() {
				got = append(got, "", v)
			}
		default:
			return
		}
		if len(got) != len(want) {
			t.Fatalf("got %q, gjson reads %q", got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("got %q, gjson reads %q", got, want)
			}
		}
	})
}

func (m members) nextAll() {
	for _, _, ok := m.next(); ok; _, _, ok = m.next() {
	}
}

func (a elements) nextAll() {
	for _, ok := a.next(); ok; _, ok = a.next() {
	}
}
