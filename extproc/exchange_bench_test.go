package extproc

import (
	"io"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"
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
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		gate := &fakeStream{ctx: b.Context(), err: io.EOF, in: asGate(
			headers(false, ":path", "/v1/chat/completions", ":method", "POST", "x-tokenmeter-project", "p"),
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
		obs := &fakeStream{ctx: b.Context(), err: io.EOF, in: asObserver(h, headers(false),
			respHeaders(false, ":status", "200", "content-type", "application/json", "content-length", "300"),
			respBody(jsonResp, true))}
		if err := s.Process(obs); err != nil {
			b.Fatal(err)
		}
	}
}
