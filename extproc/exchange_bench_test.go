package extproc

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tokenmeter/tokenmeter/internal/apikey"
)

// BenchmarkExchangeJSON is tokenmeter's own work for one non-streaming chat
// request, all four phases, without gRPC: what the server adds beyond the
// round trips. (The Envoy-level cost is in bench/.)
func BenchmarkExchangeJSON(b *testing.B) {
	s, _, _ := newTestServer(b)
	msgs := []*extprocv3.ProcessingRequest{
		headers(false, ":path", "/v1/chat/completions", ":method", "POST", "x-tokenmeter-project", "p", "content-length", "60"),
		reqBody(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"What is the cost of a token?"}]}`),
		respHeaders(false, ":status", "200", "content-type", "application/json", "content-length", "300"),
		respBody(jsonResp, true),
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		fs := &fakeStream{ctx: b.Context(), in: append([]*extprocv3.ProcessingRequest(nil), msgs...), err: io.EOF}
		if err := s.Process(fs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExchangeSplit is the same request in split mode: the gate's
// stream (the decision and the handoff), then the observer's (resumed from
// the handoff, priced, settled, recorded).
func BenchmarkExchangeSplit(b *testing.B) {
	s, _, _ := newTestServer(b)
	benchSplit(b, s, "x-tokenmeter-project", "p")
}

// BenchmarkExchangeSplitKeys is BenchmarkExchangeSplit attributed by an API
// key among 1,000 (attribution.api_keys): the difference between the two is
// what key attribution costs a request.
func BenchmarkExchangeSplitKeys(b *testing.B) {
	b.Setenv("TM_BENCH_KEY_SECRET", strings.Repeat("k", 32))
	s, _, _ := serverOn(b, testConfig+`attribution:
  api_keys: {secret_env: TM_BENCH_KEY_SECRET}
  dimensions:
    - {name: project, from: [{api_key: project}]}
    - {name: api_key, from: [{api_key: id}]}
`, memStore(b))
	reg, err := apikey.NewRegistry([]byte(strings.Repeat("k", 32)), nil, nil, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]apikey.Key, 1000)
	for i := range keys {
		keys[i] = apikey.Key{ID: fmt.Sprintf("k%d", i), Dimensions: map[string]string{"project": "p"},
			Secrets: []apikey.Secret{{Digest: reg.Hash(fmt.Sprintf("tmk_key_%d", i))}}}
	}
	reg.Configure(keys, map[string]bool{"project": true, "id": true})
	next := *s.Snapshot()
	next.Keys = reg
	s.Swap(&next)
	benchSplit(b, s, "authorization", "Bearer tmk_key_500")
}

func benchSplit(b *testing.B, s *Server, attribution ...string) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		gate := &fakeStream{ctx: b.Context(), err: io.EOF, in: asGate(
			headers(false, append([]string{":path", "/v1/chat/completions", ":method", "POST"}, attribution...)...),
			chunk(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"What is the cost of a token?"}]}`, true))}
		if err := s.Process(gate); err != nil {
			b.Fatal(err)
		}
		var h *structpb.Struct
		for _, r := range gate.sent {
			if v := r.GetDynamicMetadata().GetFields()[HandoffNamespace].GetStructValue(); v != nil {
				h = v
			}
		}
		if h == nil {
			b.Fatalf("no handoff: %v", gate.sent)
		}
		obs := &fakeStream{ctx: b.Context(), err: io.EOF, in: asObserver(h, headers(false),
			respHeaders(false, ":status", "200", "content-type", "application/json", "content-length", "300"),
			respBody(jsonResp, true))}
		if err := s.Process(obs); err != nil {
			b.Fatal(err)
		}
	}
}
