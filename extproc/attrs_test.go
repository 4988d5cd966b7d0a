package extproc

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestRequestAdapter(t *testing.T) {
	const jwt = "envoy.filters.http.jwt_authn"
	payload, err := structpb.NewStruct(map[string]any{
		"jwt_payload": map[string]any{"sub": "alice", "iat": 1700000000.0, "groups": []any{"a"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := structpb.NewStruct(map[string]any{"connection.uri_san_peer_certificate": "spiffe://td/ns/a/sa/b"})
	if err != nil {
		t.Fatal(err)
	}
	req := &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "x-tokenmeter-user", RawValue: []byte("bob")}}},
		}},
		MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{jwt: payload}},
		Attributes:      map[string]*structpb.Struct{attributesKey: attrs},
	}
	r := newRequest(req, nil)
	tests := []struct {
		name, got, want string
	}{
		{"header", r.Header("x-tokenmeter-user"), "bob"},
		{"claim", r.Metadata(jwt, []string{"jwt_payload", "sub"}), "alice"},
		{"number claim is a miss", r.Metadata(jwt, []string{"jwt_payload", "iat"}), ""},
		{"list claim is a miss", r.Metadata(jwt, []string{"jwt_payload", "groups"}), ""},
		{"struct is a miss", r.Metadata(jwt, []string{"jwt_payload"}), ""},
		{"path through a string", r.Metadata(jwt, []string{"jwt_payload", "sub", "x"}), ""},
		{"absent claim", r.Metadata(jwt, []string{"jwt_payload", "email"}), ""},
		{"absent namespace", r.Metadata("other", []string{"jwt_payload", "sub"}), ""},
		{"attribute", r.Attribute("connection.uri_san_peer_certificate"), "spiffe://td/ns/a/sa/b"},
		{"absent attribute", r.Attribute("connection.subject_peer_certificate"), ""},
		{"no attributes", newRequest(&extprocv3.ProcessingRequest{}, nil).Attribute("connection.uri_san_peer_certificate"), ""},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}
