package extproc

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tokenmeter/tokenmeter/internal/apikey"
)

// attributesKey is the key Envoy files the ext_proc filter's request
// attributes under in ProcessingRequest.attributes (checked against the
// real Envoy by test/e2e/attribution_test.go).
const attributesKey = "envoy.filters.http.ext_proc"

// request adapts the gate's first message to attribution.Request: its
// headers, the dynamic metadata Envoy forwards (metadata_options) and the
// request attributes it sends (request_attributes). Both of the latter are
// written by Envoy's filters, never by the client.
type request struct {
	hdrs  []*corev3.HeaderValue
	meta  map[string]*structpb.Struct
	attrs *structpb.Struct
	key   *apikey.Key // the valid key the request carries, or nil
}

func newRequest(req *extprocv3.ProcessingRequest, key *apikey.Key) request {
	return request{
		hdrs:  req.GetRequestHeaders().GetHeaders().GetHeaders(),
		meta:  req.GetMetadataContext().GetFilterMetadata(),
		attrs: req.GetAttributes()[attributesKey],
		key:   key,
	}
}

// APIKey reads a field of the request's valid key.
func (r request) APIKey(field string) string {
	if r.key == nil {
		return ""
	}
	return r.key.Field(field)
}

func (r request) Header(name string) string { return headerValue(r.hdrs, name) }

// Metadata walks path under namespace; only a string at its end is a value.
func (r request) Metadata(namespace string, path []string) string {
	s := r.meta[namespace]
	var v *structpb.Value
	for _, k := range path {
		if s == nil {
			return ""
		}
		v = s.GetFields()[k]
		s = v.GetStructValue()
	}
	return v.GetStringValue()
}

func (r request) Attribute(name string) string {
	return r.attrs.GetFields()[name].GetStringValue()
}
