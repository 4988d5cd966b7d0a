package dialect

import (
	"strings"
	"testing"
)

func TestTextBufferJSONString(t *testing.T) {
	tests := []struct{ raw, want string }{
		{`"plain"`, "plain"},
		{`"a\nb\t\"c\"\\\/"`, "a\nb\t\"c\"\\/"},
		{`"\u00e9\u4e2d"`, "é中"},
		{`"\ud83d\ude00!"`, "😀!"},
		{`"\ud83d"`, "\uFFFD"},
		{`"bad \uZZZZ"`, "bad \uFFFDZZZZ"},
		{`"trailing \`, ""},
		{`42`, ""},
	}
	for _, tt := range tests {
		var b TextBuffer
		b.WriteJSONString(tt.raw)
		if string(b.Bytes()) != tt.want {
			t.Errorf("%s: got %q, want %q", tt.raw, b.Bytes(), tt.want)
		}
	}
}

func TestTextBufferCaps(t *testing.T) {
	var b TextBuffer
	b.WriteString(strings.Repeat("x", MaxEstimateText-1))
	b.WriteString("yz")
	b.WriteString("more")
	if len(b.Bytes()) != MaxEstimateText || b.Total() != MaxEstimateText+5 || b.Bytes()[MaxEstimateText-1] != 'y' {
		t.Fatalf("kept %d, total %d", len(b.Bytes()), b.Total())
	}
}

func FuzzTextBuffer(f *testing.F) {
	f.Add(`"a\u00e9\ud83d\ude00\n"`)
	f.Fuzz(func(t *testing.T, raw string) {
		var b TextBuffer
		b.WriteJSONString(raw)
		if len(b.Bytes()) > MaxEstimateText {
			t.Fatal("over cap")
		}
	})
}
