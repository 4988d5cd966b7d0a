package mockllm_test

import (
	"encoding/json"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"net/http"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/dialect"
	tmusage "github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/test/mockllm"
)

// A Llama model through InvokeModel answers in Llama's native shape, with
// the usage in Bedrock's headers; max_gen_len cuts the reply.
func TestBedrockInvokeLlama(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	const path = "/model/us.meta.llama3-3-70b-instruct-v1:0/invoke"
	tests := []struct {
		name, body       string
		headers          map[string]string
		status           int
		input, output    string
		stop, generation string
	}{
		// 22 bytes of prompt: ceil(22/4) = 6 tokens; the default reply.
		{"default", `{"prompt":"Tell me about llamas.!"}`, nil, 200, "6", "8", "stop", mockllm.ReplyText(8)},
		{"cut", `{"prompt":"x","max_gen_len":3}`, nil, 200, "1", "3", "length", mockllm.ReplyText(3)},
		// No prompt cache: the cached-tokens header is ignored.
		{"overrides", `{"prompt":"x"}`, map[string]string{mockllm.HeaderPromptTokens: "1200",
			mockllm.HeaderCompletionTokens: "40", mockllm.HeaderCachedTokens: "100"}, 200, "1200", "40", "stop", mockllm.ReplyText(40)},
		{"no prompt", `{"max_gen_len":3}`, nil, 400, "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, http.MethodPost, base+path, tt.body, tt.headers)
			if r.status != tt.status {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if tt.status != 200 {
				return
			}
			for name, want := range map[string]string{
				"X-Amzn-Bedrock-Input-Token-Count": tt.input, "X-Amzn-Bedrock-Output-Token-Count": tt.output,
				"X-Amzn-Bedrock-Cache-Read-Input-Token-Count": "0", "X-Amzn-Bedrock-Cache-Write-Input-Token-Count": "0",
			} {
				if got := r.header.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			var got struct {
				Generation string `json:"generation"`
				StopReason string `json:"stop_reason"`
			}
			if err := json.Unmarshal(r.body, &got); err != nil || got.Generation != tt.generation || got.StopReason != tt.stop {
				t.Fatalf("body %s: %v", r.body, err)
			}
		})
	}
}

// The dialect reads the Llama answer's usage from the headers alone, and
// without them has none: the body's own counts are Llama's, not a shape
// the dialect shares, which is why split mode must forward the headers.
func TestBedrockInvokeLlamaMeteredFromHeaders(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	r := do(t, http.MethodPost, base+"/model/meta.llama3-3-70b-instruct-v1:0/invoke", `{"prompt":"hi","max_gen_len":64}`,
		map[string]string{mockllm.HeaderPromptTokens: "1000", mockllm.HeaderCompletionTokens: "20"})
	for _, withHeaders := range []bool{true, false} {
		header := func(name string) string { return "" }
		if withHeaders {
			header = func(name string) string { return r.header.Get(name) }
		}
		dec := dialect.BedrockInvoke().NewDecoder(dialect.Response{Status: r.status,
			ContentType: r.header.Get("Content-Type"), Header: header}, 1<<20)
		_ = dec.Feed(r.body)
		res := dec.Finish(true)
		in, out := res.Usage.Get(tmusage.Input), res.Usage.Get(tmusage.Output)
		switch {
		case withHeaders && (res.Err != nil || in != 1000 || out != 20):
			t.Errorf("with headers: input %d, output %d, err %v; want 1000, 20, nil", in, out, res.Err)
		case !withHeaders && (reason.Of(res.Err) != reason.NoUsage || in != 0 || out != 0):
			t.Errorf("without headers: input %d, output %d, err %v; want no usage", in, out, res.Err)
		}
	}
}
