package estimate

import (
	"strings"
	"sync"
	"testing"
)

func TestTokens(t *testing.T) {
	tests := []struct {
		name   string
		model  string
		text   string
		total  int64 // 0: len(text)
		want   int64
		method Method
	}{
		// Counts checked against OpenAI's tiktoken for these encodings.
		{"o200k hello world", "gpt-4o-mini", "hello world", 0, 2, BPEo200k},
		{"cl100k hello world", "gpt-3.5-turbo", "hello world", 0, 2, BPEcl100k},
		{"dated o200k", "gpt-4o-2024-08-06", "The quick brown fox jumps over the lazy dog.", 0, 10, BPEo200k},
		{"prefixed model", "openai/gpt-4.1-mini", "hello world", 0, 2, BPEo200k},
		{"claude is approximated", "claude-sonnet-4", "hello world", 0, 3, BytesDiv4},
		{"capped text scales to the total", "gpt-4o", "hello world", 22, 4, BPEo200k},
		{"nothing to count", "gpt-4o", "", 0, 0, noEstimate},
		{"bytes without text", "gpt-4o", "", 10, 3, BytesDiv4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			total := tt.total
			if total == 0 {
				total = int64(len(tt.text))
			}
			n, m := Tokens(tt.model, []byte(tt.text), total)
			if n != tt.want || m != tt.method {
				t.Fatalf("got %d %s, want %d %s", n, m, tt.want, tt.method)
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	var wg sync.WaitGroup
	text := []byte(strings.Repeat("tokenmeter counts tokens. ", 50))
	want, _ := Tokens("gpt-4o", text, int64(len(text)))
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n, _ := Tokens("gpt-4o", text, int64(len(text))); n != want {
				t.Errorf("got %d, want %d", n, want)
			}
		}()
	}
	wg.Wait()
}

func BenchmarkTokensO200k(b *testing.B) {
	text := []byte(strings.Repeat("The quick brown fox jumps over the lazy dog. ", 100))
	Tokens("gpt-4o", text, int64(len(text)))
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		Tokens("gpt-4o", text, int64(len(text)))
	}
}
