package dialect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

func TestOpenAIChatParseRequest(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Request
	}{
		{"minimal", `{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}`,
			Request{Model: "gpt-4o", PromptBytes: 2, Prompt: "Hi"}},
		{"stream with usage", `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[]}`,
			Request{Model: "gpt-4o", Stream: true, IncludeUsage: true}},
		{"stream false", `{"model":"m","stream":false,"stream_options":{"include_usage":true}}`,
			Request{Model: "m", IncludeUsage: true}},
		{"max_tokens", `{"model":"m","max_tokens":256}`, Request{Model: "m", MaxTokens: 256}},
		{"max_completion_tokens wins", `{"model":"m","max_tokens":256,"max_completion_tokens":1024}`,
			Request{Model: "m", MaxTokens: 1024}},
		{"null max_completion_tokens", `{"model":"m","max_completion_tokens":null,"max_tokens":9}`,
			Request{Model: "m", MaxTokens: 9}},
		{"negative max_tokens", `{"model":"m","max_tokens":-5}`, Request{Model: "m"}},
		{"array content", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"What is in"},` +
			`{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},{"type":"text","text":" this?"}]}]}`,
			Request{Model: "m", PromptBytes: 16, Prompt: "What is in this?"}},
		{"escaped content", `{"model":"m","messages":[{"role":"system","content":"a\nb \"c\" caf\u00e9 \ud83d\ude00"},` +
			`{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},` +
			`{"role":"tool","tool_call_id":"c1","content":"42"}]}`,
			Request{Model: "m", PromptBytes: 18 + 2, Prompt: "a\nb \"c\" café 😀" + "42"}},
		{"repeated keys, last wins", `{"model":"a","stream":true,"model":"b","stream":false}`, Request{Model: "b"}},
		{"escaped keys", `{"mod\u0065l":"m","stre\u0061m":true}`, Request{Model: "m", Stream: true}},
		{"non-string model", `{"model":42}`, Request{}},
		{"whitespace", " \n{ \"model\" : \"m\" , \"stream\" : true }\n", Request{Model: "m", Stream: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, inject := range []bool{false, true} {
				got, _, err := OpenAIChat().ParseRequest([]byte(tt.body), RequestOptions{InjectStreamUsage: inject})
				if err != nil {
					t.Fatal(err)
				}
				want := tt.want
				want.IncludeUsage = want.IncludeUsage || (inject && want.Stream)
				if got != want {
					t.Fatalf("inject=%v: got %+v, want %+v", inject, got, want)
				}
			}
		})
	}
}

func TestOpenAIChatParseRequestErrors(t *testing.T) {
	// What an unreadable body still says (Dialect.ParseRequest's contract):
	// the top-level model and stream before it broke, and its length as the
	// prompt's bound.
	tests := []struct {
		body string
		want reason.Reason
		req  Request
	}{
		{``, reason.MalformedJSON, Request{}},
		{`{"model":"m",}`, reason.MalformedJSON, Request{Model: "m", PromptBytes: 14}},
		{`{"model":"m"`, reason.MalformedJSON, Request{Model: "m", PromptBytes: 12}},
		{`{"model":"m","stream":true,"messages":[{"content":"ab`, reason.MalformedJSON, Request{Model: "m", Stream: true, PromptBytes: 53}},
		{`[{"model":"m"}]`, reason.UnexpectedShape, Request{PromptBytes: 15}},
		{`"model"`, reason.UnexpectedShape, Request{PromptBytes: 7}},
	}
	for _, tt := range tests {
		req, newBody, err := OpenAIChat().ParseRequest([]byte(tt.body), RequestOptions{InjectStreamUsage: true})
		if !errors.Is(err, tt.want) || newBody != nil || req != tt.req {
			t.Errorf("%q: got %+v %q %v, want %+v %v", tt.body, req, newBody, err, tt.req, tt.want)
		}
	}
}

func TestOpenAIChatInjectStreamUsage(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"no stream_options", `{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"stream":true,"temperature":0.2}`},
		{"empty stream_options", `{"model":"gpt-4o","stream":true,"stream_options":{}}`},
		{"other stream option", "{\n  \"model\": \"gpt-4o\",\n  \"stream\": true,\n  \"stream_options\": {\"include_obfuscation\": false}\n}\n"},
		{"include_usage false", `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false},"n":2}`},
		{"stream_options null", `{"model":"gpt-4o","stream":true,"stream_options":null,"user":"u1"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			orig := bytes.Clone(body)
			req, newBody, err := OpenAIChat().ParseRequest(body, RequestOptions{InjectStreamUsage: true})
			if err != nil || newBody == nil || !req.IncludeUsage {
				t.Fatalf("got %+v %q %v; want an injected body", req, newBody, err)
			}
			if !bytes.Equal(body, orig) {
				t.Fatal("the original body was modified")
			}
			if !gjson.ValidBytes(newBody) || gjson.GetBytes(newBody, "stream_options.include_usage").Type != gjson.True {
				t.Fatalf("new body %s lacks include_usage", newBody)
			}
			assertOnlyIncludeUsageChanged(t, body, newBody)
			again, _, err := OpenAIChat().ParseRequest(newBody, RequestOptions{})
			if err != nil || again != req {
				t.Fatalf("re-parsed %+v %v, want %+v", again, err, req)
			}
		})
	}
}

// assertOnlyIncludeUsageChanged checks every top-level key but
// stream_options, and every other stream option, kept its exact bytes.
func assertOnlyIncludeUsageChanged(t *testing.T, before, after []byte) {
	t.Helper()
	top := func(b []byte) map[string]string {
		m := map[string]string{}
		gjson.ParseBytes(b).ForEach(func(k, v gjson.Result) bool { m[k.Str] = v.Raw; return true })
		return m
	}
	b, a := top(before), top(after)
	bOpts, aOpts := b["stream_options"], a["stream_options"]
	delete(b, "stream_options")
	delete(a, "stream_options")
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("top-level keys changed:\nbefore %v\nafter  %v", b, a)
	}
	opts := func(raw string) map[string]string {
		m := map[string]string{}
		if !gjson.Parse(raw).IsObject() {
			return m
		}
		gjson.Parse(raw).ForEach(func(k, v gjson.Result) bool {
			if k.Str != "include_usage" {
				m[k.Str] = v.Raw
			}
			return true
		})
		return m
	}
	if fmt.Sprint(opts(aOpts)) != fmt.Sprint(opts(bOpts)) {
		t.Fatalf("stream options changed: before %s after %s", bOpts, aOpts)
	}
	// Where nothing had to be replaced, the rewrite only inserted bytes.
	replaced := bytes.Contains(before, []byte("include_usage")) || bytes.Contains(before, []byte("null"))
	if !replaced && !isSubsequence(before, after) {
		t.Fatalf("bytes of the original were lost:\nbefore %s\nafter  %s", before, after)
	}
}

// isSubsequence reports whether every byte of a appears in b, in order.
func isSubsequence(a, b []byte) bool {
	for _, c := range a {
		i := bytes.IndexByte(b, c)
		if i < 0 {
			return false
		}
		b = b[i+1:]
	}
	return true
}

func TestOpenAIChatNoInjection(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		inject bool
	}{
		{"already set", `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, true},
		{"not streaming", `{"model":"m"}`, true},
		{"stream false", `{"model":"m","stream":false}`, true},
		{"stream not a bool", `{"model":"m","stream":"true"}`, true},
		{"disabled", `{"model":"m","stream":true}`, false},
		{"stream_options not an object", `{"model":"m","stream":true,"stream_options":"yes"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, newBody, err := OpenAIChat().ParseRequest([]byte(tt.body), RequestOptions{InjectStreamUsage: tt.inject})
			if err != nil || newBody != nil {
				t.Fatalf("got %q %v, want no rewrite", newBody, err)
			}
		})
	}
}

// oracleRequest reads a request with encoding/json, whose maps also keep
// the last of repeated keys.
func oracleRequest(body []byte) (Request, bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return Request{}, false
	}
	var req Request
	_ = json.Unmarshal(top["model"], &req.Model)
	req.Stream = string(top["stream"]) == "true"
	var opts map[string]json.RawMessage
	if json.Unmarshal(top["stream_options"], &opts) == nil {
		req.IncludeUsage = string(opts["include_usage"]) == "true"
	}
	n, present, exact := oracleInt(top["max_completion_tokens"])
	if !present {
		n, present, exact = oracleInt(top["max_tokens"])
	}
	if present && !exact {
		return Request{}, false // 1e3 or 2.5: not worth a second number parser
	}
	req.MaxTokens = max(n, 0)
	var msgs []json.RawMessage
	_ = json.Unmarshal(top["messages"], &msgs)
	for _, m := range msgs {
		var msg map[string]json.RawMessage
		if json.Unmarshal(m, &msg) != nil {
			continue
		}
		var s string
		var parts []map[string]json.RawMessage
		if json.Unmarshal(msg["content"], &s) == nil {
			req.Prompt += s
		} else if json.Unmarshal(msg["content"], &parts) == nil {
			for _, p := range parts {
				var text string
				if json.Unmarshal(p["text"], &text) == nil {
					req.Prompt += text
				}
			}
		}
	}
	req.PromptBytes = int64(len(req.Prompt))
	return req, true
}

// oracleInt reads raw when it is a JSON number; exact is false when it is
// not a plain integer.
func oracleInt(raw json.RawMessage) (n int64, present, exact bool) {
	var num json.Number
	if json.Unmarshal(raw, &num) != nil || len(raw) == 0 || raw[0] == '"' {
		return 0, false, false
	}
	n, err := strconv.ParseInt(string(num), 10, 64)
	return n, true, err == nil
}

func FuzzOpenAIChatRequest(f *testing.F) {
	f.Add([]byte(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Hi\n"}]}`), true)
	f.Add([]byte(`{"model":"m","stream":true,"stream_options":{"include_usage":false},"max_tokens":3}`), true)
	f.Add([]byte(`{"messages":[{"content":[{"type":"text","text":"a\u00e9"}]}],"max_completion_tokens":1e2}`), false)
	f.Add([]byte(`{"stream_options":null,"stream":true,"stream":true}`), true)
	f.Add([]byte("\xef\xbb\xbf{\"model\":\"m\",\"temperature\":NaN,\"top_p\":-Infinity} x"), true)
	f.Add([]byte(`{"model":"m","messages":[{"content":"a"}],"max_tokens":Infinity}{"model":"n"}`), false)
	f.Fuzz(func(t *testing.T, body []byte, inject bool) {
		req, newBody, err := OpenAIChat().ParseRequest(body, RequestOptions{InjectStreamUsage: inject})
		if err != nil {
			checkSalvaged(t, body, req, newBody, err)
			return
		}
		if json.Valid(body) && utf8.Valid(body) {
			checkAgainstOracle(t, body, req, newBody)
		}
		if newBody == nil {
			checkBOMChangesNothing(t, body, req)
			return
		}
		checkRewrite(t, body, inject, req, newBody)
	})
}

// checkSalvaged: a body that cannot be read yields only what salvage reads.
func checkSalvaged(t *testing.T, body []byte, req Request, newBody []byte, err error) {
	t.Helper()
	if newBody != nil || req.Prompt != "" || req.PromptBytes != int64(len(body)) || req.MaxTokens != 0 {
		t.Fatalf("error %v with %+v: want only what salvage reads", err, req)
	}
}

// checkAgainstOracle: valid JSON reads as encoding/json reads it (the
// injected include_usage aside, which a rewrite sets).
func checkAgainstOracle(t *testing.T, body []byte, req Request, newBody []byte) {
	t.Helper()
	if want, ok := oracleRequest(body); ok && (want.Model != req.Model || want.Stream != req.Stream ||
		want.MaxTokens != req.MaxTokens || want.PromptBytes != req.PromptBytes || want.Prompt != req.Prompt ||
		(newBody == nil && want.IncludeUsage != req.IncludeUsage)) {
		t.Fatalf("got %+v, encoding/json reads %+v", req, want)
	}
}

// checkBOMChangesNothing: a BOM before a body read is the only difference
// it makes.
func checkBOMChangesNothing(t *testing.T, body []byte, req Request) {
	t.Helper()
	if req.Lenient&LenientBOM != 0 {
		return
	}
	bommed, nb, err := OpenAIChat().ParseRequest(append([]byte("\xef\xbb\xbf"), body...), RequestOptions{})
	want := req
	want.Lenient |= LenientBOM
	if err != nil || nb != nil || bommed.Model != want.Model || bommed.Stream != want.Stream ||
		bommed.MaxTokens != want.MaxTokens || bommed.PromptBytes != want.PromptBytes || bommed.Lenient != want.Lenient {
		t.Fatalf("with a BOM %q read as %+v %v, want %+v", body, bommed, err, want)
	}
}

// checkRewrite: a body is rewritten only when injection was asked for, on a
// stream, which then carries usage; the rewrite is valid JSON and reads back
// as the request it replaced.
func checkRewrite(t *testing.T, body []byte, inject bool, req Request, newBody []byte) {
	t.Helper()
	if !req.Stream || !req.IncludeUsage || !inject || !gjson.ValidBytes(newBody) {
		t.Fatalf("bad rewrite of %q: %+v %q", body, req, newBody)
	}
	again, _, err := OpenAIChat().ParseRequest(newBody, RequestOptions{})
	if err != nil || again != req {
		t.Fatalf("rewrite %q re-parsed as %+v %v, want %+v", newBody, again, err, req)
	}
}

// chatRequestBody is a realistic multi-turn request of about 4 KB.
func chatRequestBody(stream bool) []byte {
	var b bytes.Buffer
	b.WriteString(`{"model":"gpt-4o-2024-08-06","messages":[{"role":"system","content":"You are a helpful assistant.\nAnswer briefly."}`)
	for i := range 12 {
		fmt.Fprintf(&b, `,{"role":"user","content":"Question %d: what does \"idempotent\" mean for an HTTP method? Give an example."}`, i)
		fmt.Fprintf(&b, `,{"role":"assistant","content":"An idempotent method has the same effect whether it runs once or many times.\nPUT is one; POST is not (%d)."}`, i)
	}
	b.WriteString(`,{"role":"user","content":[{"type":"text","text":"And this image?"},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]`)
	fmt.Fprintf(&b, `,"temperature":0.2,"max_completion_tokens":512,"stream":%v}`, stream)
	return b.Bytes()
}

func BenchmarkParseRequest(b *testing.B) {
	body := chatRequestBody(false)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	d := OpenAIChat()
	for b.Loop() {
		if _, _, err := d.ParseRequest(body, RequestOptions{InjectStreamUsage: true}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRequestInject(b *testing.B) {
	body := chatRequestBody(true)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	d := OpenAIChat()
	for b.Loop() {
		if _, nb, err := d.ParseRequest(body, RequestOptions{InjectStreamUsage: true}); err != nil || nb == nil {
			b.Fatal(err)
		}
	}
}

func TestOpenAIServiceTier(t *testing.T) {
	for body, want := range map[string]string{
		`{"model":"m","service_tier":"flex"}`:     "flex",
		`{"model":"m","service_tier":"priority"}`: "priority",
		`{"model":"m","service_tier":"auto"}`:     "",
		`{"model":"m","service_tier":"default"}`:  "",
		`{"model":"m"}`:                           "",
	} {
		for _, d := range []Dialect{OpenAIChat(), OpenAIResponses()} {
			req, _, err := d.ParseRequest([]byte(body), RequestOptions{})
			if err != nil || req.ServiceTier != want {
				t.Errorf("%s %s: tier %q, err %v; want %q", d.Name(), body, req.ServiceTier, err, want)
			}
		}
	}
}
