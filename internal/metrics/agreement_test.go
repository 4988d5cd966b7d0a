package metrics

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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

// requestFor reads the request that the fixture in dir answers, which lives
// with the dialect's fixtures: dir/request.json when the case has its own
// (a streaming path, another model), else the dialect's
// testdata/<dialect>/request.json. Its "body" is sent as written (compacted)
// or, when it is a JSON string, as that string's bytes (a multipart form);
// "content_type" defaults to application/json. A dialect without one fails
// the test: every dialect's fixtures are replayed.
func requestFor(t *testing.T, dir string) fixtureRequest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "request.json"))
	if errors.Is(err, fs.ErrNotExist) {
		b, err = os.ReadFile(filepath.Join(filepath.Dir(dir), "request.json"))
	}
	if err != nil {
		t.Fatalf("no request for %s: add one to testdata/<dialect>/request.json: %v", dir, err)
	}
	var r struct {
		Path        string          `json:"path"`
		ContentType string          `json:"content_type"`
		Body        json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Path == "" || len(r.Body) == 0 {
		t.Fatalf("%s: request.json wants a path and a body: %v", dir, err)
	}
	req := fixtureRequest{path: r.Path, contentType: cmp.Or(r.ContentType, "application/json")}
	var raw string
	if json.Unmarshal(r.Body, &raw) == nil {
		req.body = []byte(raw)
		return req
	}
	var body bytes.Buffer
	if err := json.Compact(&body, r.Body); err != nil {
		t.Fatal(err)
	}
	req.body = body.Bytes()
	return req
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
			req := requestFor(t, dir)
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
