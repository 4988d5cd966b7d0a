package dialect

import (
	"bytes"
	"math/rand/v2"
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

// TestTextBufferPages writes pieces of every size across page boundaries
// and up to the cap, and checks the text against plain concatenation.
func TestTextBufferPages(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, maxPiece := range []int{1, 100, textPageSize - 1, textPageSize + 1, 3 * textPageSize} {
		var b TextBuffer
		var want []byte
		total := 0
		for total < MaxEstimateText+2*textPageSize {
			n := r.IntN(maxPiece) + 1
			piece := strings.Repeat(string(rune('a'+total%26)), n)
			b.WriteString(piece)
			want = append(want, piece...)
			total += n
		}
		want = want[:MaxEstimateText]
		if got := b.Bytes(); !bytes.Equal(got, want) || b.Total() != int64(total) {
			t.Fatalf("pieces up to %d: kept %d bytes (want %d), total %d (want %d)", maxPiece, len(got), len(want), b.Total(), total)
		}
		if got := b.Bytes(); !bytes.Equal(got, want) {
			t.Fatalf("pieces up to %d: a second Bytes differs", maxPiece)
		}
	}
}

// TestTextBufferAfterBytes: Bytes may be followed by more writes, and a
// page back from the pool shows none of its old text.
func TestTextBufferAfterBytes(t *testing.T) {
	var first TextBuffer
	first.WriteString(strings.Repeat("x", textPageSize+10))
	_ = first.Bytes()
	first.WriteString("yz")
	if got := first.Bytes(); len(got) != textPageSize+12 || string(got[len(got)-3:]) != "xyz" {
		t.Fatalf("after Bytes: kept %d bytes ending %q", len(got), got[max(0, len(got)-3):])
	}
	var second TextBuffer
	second.WriteString("ab")
	if got := second.Bytes(); string(got) != "ab" {
		t.Fatalf("got %q, want %q", got, "ab")
	}
	var empty TextBuffer
	empty.WriteString("")
	if got := empty.Bytes(); got != nil {
		t.Fatalf("nothing written: got %q, want nil", got)
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
