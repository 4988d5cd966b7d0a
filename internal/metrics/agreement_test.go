package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"

	"github.com/tokenmeter/tokenmeter/extproc"
	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/ratelimit/badgerstore"
)

// fixtureRequest is the request a dialect's recorded responses answer: the
// path names the dialect (and, for Gemini and Bedrock, the model), the body
// a model of the built-in catalog.
type fixtureRequest struct {
	path, contentType string
	body              []byte
}

func jsonRequest(path, body string) fixtureRequest {
	return fixtureRequest{path: path, contentType: "application/json", body: []byte(body)}
}

// requestFor builds the request for fixture name of dialect d; ok is false
// for a dialect this test does not know, which fails it: every dialect's
// fixtures are replayed.
func requestFor(d, name string, sse bool) (fixtureRequest, bool) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	switch d {
	case "openai_chat":
		return jsonRequest("/v1/chat/completions", `{"model":"gpt-4o-mini",`+msgs+`}`), true
	case "azure_openai_chat":
		return jsonRequest("/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", `{`+msgs+`}`), true
	case "anthropic_messages":
		return jsonRequest("/v1/messages", `{"model":"claude-3-5-haiku-20241022","max_tokens":100,`+msgs+`}`), true
	case "bedrock_converse":
		return jsonRequest("/model/anthropic.claude-3-haiku-20240307-v1:0/converse", `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`), true
	case "bedrock_converse_stream":
		return jsonRequest("/model/anthropic.claude-3-haiku-20240307-v1:0/converse-stream", `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`), true
	case "bedrock_invoke":
		return jsonRequest("/model/meta.llama3-8b-instruct-v1:0/invoke", `{"prompt":"hi","max_gen_len":50}`), true
	case "bedrock_invoke_stream":
		return jsonRequest("/model/meta.llama3-8b-instruct-v1:0/invoke-with-response-stream", `{"prompt":"hi","max_gen_len":50}`), true
	case "cohere_chat":
		return jsonRequest("/v2/chat", `{"model":"command-r",`+msgs+`}`), true
	case "cohere_chat_v1":
		return jsonRequest("/v1/chat", `{"model":"command-r","message":"hi","stream":true}`), true
	case "gemini":
		path := "/v1beta/models/gemini-2.0-flash:generateContent"
		if sse || strings.HasPrefix(name, "array_stream") {
			path = "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
		}
		return jsonRequest(path, `{"contents":[{"parts":[{"text":"hi"}]}]}`), true
	case "ollama_chat":
		return jsonRequest("/api/chat", `{"model":"llama3",`+msgs+`}`), true
	case "ollama_generate":
		return jsonRequest("/api/generate", `{"model":"llama3","prompt":"hi"}`), true
	case "openai_completions":
		return jsonRequest("/v1/completions", `{"model":"gpt-4o-mini","prompt":"hi"}`), true
	case "openai_embeddings":
		return jsonRequest("/v1/embeddings", `{"model":"text-embedding-3-small","input":"hi"}`), true
	case "openai_responses":
		return jsonRequest("/v1/responses", `{"model":"gpt-4o-mini","input":"hi"}`), true
	case "openai_speech":
		return jsonRequest("/v1/audio/speech", `{"model":"tts-1","input":"hello world","voice":"alloy"}`), true
	case "openai_images":
		model := `"dall-e-3","quality":"standard","size":"1024x1024"`
		switch {
		case strings.HasPrefix(name, "dalle2"):
			model = `"dall-e-2","size":"1024x1024"`
		case strings.HasPrefix(name, "gpt_image"), strings.HasPrefix(name, "sse"):
			model = `"gpt-image-1","quality":"low","size":"1024x1024"`
		}
		return jsonRequest("/v1/images/generations", `{"model":`+model+`,"prompt":"a cat"}`), true
	case "openai_audio":
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		model := "whisper-1"
		if strings.Contains(name, "tokens") || strings.HasPrefix(name, "sse") {
			model = "gpt-4o-transcribe"
		}
		_ = w.WriteField("model", model)
		fw, _ := w.CreateFormFile("file", "speech.mp3")
		_, _ = fw.Write([]byte("ID3\x04\x00\x00\x00\x00"))
		_ = w.Close()
		return fixtureRequest{path: "/v1/audio/transcriptions", contentType: w.FormDataContentType(), body: buf.Bytes()}, true
	}
	return fixtureRequest{}, false
}

// Every recorded response of every dialect, replayed through an
// extproc.Server with the built-in catalog into the metrics and a capturing
// sink: for each record, tokenmeter_cost_total moves by exactly the record's
// cost (nano-units, not a float) when it is priced and charged, and not at
// all otherwise. Units-only requests (Whisper, tts-1, DALL·E) are among them
// and must be priced.
func TestCostMetricMatchesEveryFixtureRecord(t *testing.T) {
	dirs, err := filepath.Glob("../dialect/testdata/*/*/meta.json")
	if err != nil || len(dirs) < 100 {
		t.Fatalf("%d fixtures found: %v", len(dirs), err)
	}
	cfg, err := config.Parse("test.yaml", []byte("unpriced: {policy: allow}\n"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := badgerstore.Open(badgerstore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m := New(DimensionNames("project", "team", "user"), nil, quiet)
	sink := &captureSink{}
	srv := extproc.NewServer(extproc.NewSnapshot(cfg, store, time.Now), ledger.Sinks{m, sink}, m, quiet, time.Now)
	priced, unitsOnly := 0, map[usage.Unit]int{}
	for _, meta := range dirs {
		dir := filepath.Dir(meta)
		d, name := filepath.Base(filepath.Dir(dir)), filepath.Base(dir)
		t.Run(d+"/"+name, func(t *testing.T) {
			f := readFixture(t, dir)
			req, ok := requestFor(d, name, strings.HasPrefix(f.ContentType, "text/event-stream"))
			if !ok {
				t.Fatalf("no request for dialect %s: add one to requestFor", d)
			}
			before := m.costSum()
			r := replay(t, srv, sink, req, f)
			got := m.costSum() - before
			want := money.Amount(0)
			if r.Priced && r.Outcome.Charged() {
				want = r.Cost
				priced++
				if r.Usage.Total() == 0 {
					for u, c := range r.Usage.Units {
						if c.N > 0 {
							unitsOnly[usage.Unit(u)]++
						}
					}
				}
			}
			if got != want {
				t.Fatalf("cost_total moved by %s, want %s (record: outcome %s, priced %v, cost %s, usage %+v)",
					got, want, r.Outcome, r.Priced, r.Cost, r.Usage)
			}
		})
	}
	t.Logf("%d fixtures, %d priced and charged; units-only: %v", len(dirs), priced, unitsOnly)
	for u := usage.Unit(0); u < usage.NumUnits; u++ {
		if unitsOnly[u] == 0 {
			t.Errorf("no priced fixture billed in %s alone: the units path is not covered", u)
		}
	}
}

type fixtureMeta struct {
	Status          int               `json:"status"`
	ContentType     string            `json:"content_type"`
	ContentEncoding string            `json:"content_encoding"`
	Complete        *bool             `json:"complete"`
	Headers         map[string]string `json:"headers"`
	response        []byte
}

func readFixture(t *testing.T, dir string) fixtureMeta {
	t.Helper()
	var f fixtureMeta
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err == nil {
		f.response, err = os.ReadFile(filepath.Join(dir, "response"))
	}
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// replay plays one exchange inline (request headers and body, response
// headers and body) and returns the one record it produced. A fixture cut
// before its end ends the stream without end_of_stream, as a reset does.
func replay(t *testing.T, srv *extproc.Server, sink *captureSink, req fixtureRequest, f fixtureMeta) ledger.Record {
	t.Helper()
	resp := []string{":status", itoa(f.Status)}
	if f.ContentType != "" {
		resp = append(resp, "content-type", f.ContentType)
	}
	if f.ContentEncoding != "" {
		resp = append(resp, "content-encoding", f.ContentEncoding)
	}
	for k, v := range f.Headers {
		resp = append(resp, k, v)
	}
	complete := f.Complete == nil || *f.Complete
	msgs := []*extprocv3.ProcessingRequest{
		{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: headerMap(":path", req.path, ":method", "POST",
			"content-type", req.contentType, "x-tokenmeter-project", "p")}},
		{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: req.body, EndOfStream: true}}},
		{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: headerMap(resp...)}},
		{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: f.response, EndOfStream: complete}}},
	}
	n := sink.len()
	_ = srv.Process(&playStream{ctx: context.Background(), in: msgs})
	recs := sink.since(n)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	return recs[0]
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func headerMap(kv ...string) *extprocv3.HttpHeaders {
	var hs []*corev3.HeaderValue
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: hs}}
}

type captureSink struct {
	mu   sync.Mutex
	recs []ledger.Record
}

func (c *captureSink) Append(r *ledger.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, *r)
}

func (c *captureSink) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.recs)
}

func (c *captureSink) since(n int) []ledger.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ledger.Record(nil), c.recs[n:]...)
}

// playStream plays a fixed list of messages, then ends as Envoy does when
// the stream is over.
type playStream struct {
	extprocv3.ExternalProcessor_ProcessServer
	ctx context.Context
	in  []*extprocv3.ProcessingRequest
}

func (p *playStream) Context() context.Context { return p.ctx }
func (p *playStream) Recv() (*extprocv3.ProcessingRequest, error) {
	if len(p.in) == 0 {
		return nil, io.EOF
	}
	m := p.in[0]
	p.in = p.in[1:]
	return m, nil
}
func (p *playStream) Send(*extprocv3.ProcessingResponse) error { return nil }
func (p *playStream) SetHeader(metadata.MD) error              { return nil }
func (p *playStream) SendHeader(metadata.MD) error             { return nil }
func (p *playStream) SetTrailer(metadata.MD)                   {}
