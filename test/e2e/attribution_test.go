package e2e

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// jwtAttribution reads project and user from a verified JWT's claims, which
// Envoy's jwt_authn filter leaves in dynamic metadata; the headers are only
// a fallback for requests that carry no claim.
const jwtAttribution = `attribution:
  dimensions:
    - name: project
      from:
        - {metadata: {namespace: envoy.filters.http.jwt_authn, path: [jwt_payload, project]}}
        - {header: x-tokenmeter-project}
    - {name: team, header: x-tokenmeter-team}
    - name: user
      from:
        - {metadata: {namespace: envoy.filters.http.jwt_authn, path: [jwt_payload, sub]}}
        - {header: x-tokenmeter-user}
`

// testIssuer signs RS256 tokens with a key made for the test.
type testIssuer struct{ key *rsa.PrivateKey }

func newIssuer(t *testing.T) testIssuer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testIssuer{k}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwks is the issuer's public key as a JSON Web Key Set.
func (is testIssuer) jwks(t *testing.T) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "test",
		"n": b64(is.key.N.Bytes()), "e": b64(big.NewInt(int64(is.key.E)).Bytes()),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (is testIssuer) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	h, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "test"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signed := b64(h) + "." + b64(p)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, is.key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + b64(sig)
}

// withJWTAuthn puts jwt_authn, verifying tokens against jwks, in front of
// the gate of the shipped split config, and has the gate forward the
// filter's metadata namespace.
func withJWTAuthn(t *testing.T, config []byte, jwks string) []byte {
	t.Helper()
	jwksJSON, err := json.Marshal(jwks)
	if err != nil {
		t.Fatal(err)
	}
	gate := []byte("          - name: tokenmeter.gate\n")
	filter := `          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                test:
                  issuer: https://issuer.test
                  audiences: [tokenmeter]
                  local_jwks: {inline_string: ` + string(jwksJSON) + `}
                  payload_in_metadata: jwt_payload
              rules:
                - match: {prefix: /}
                  requires: {provider_name: test}
`
	receiving := []byte("              metadata_options:\n                receiving_namespaces:\n                  untyped: [tokenmeter, tokenmeter.handoff, tokenmeter.feedback]\n")
	forwarding := append(bytes.Clone(receiving), "                forwarding_namespaces:\n                  untyped: [envoy.filters.http.jwt_authn]\n"...)
	if bytes.Count(config, gate) != 1 || bytes.Count(config, receiving) != 1 {
		t.Fatalf("the gate filter or its metadata_options are not where expected:\n%s", config)
	}
	config = bytes.Replace(config, gate, append([]byte(filter), gate...), 1)
	return bytes.Replace(config, receiving, forwarding, 1)
}

// Issue 15: a request is attributed to its verified JWT's claims, which the
// client cannot forge: headers claiming another project and user lose to
// them. A token Envoy cannot verify gets 401 from Envoy and never reaches
// tokenmeter's provider.
func TestAttributionFromJWTClaims(t *testing.T) {
	s := testbed.New(t, testbed.Options{Bin: bin, Extra: jwtAttribution})
	is := newIssuer(t)
	proxy := s.StartProxy(withJWTAuthn(t, s.EnvoyConfig(s.TM.GRPC), is.jwks(t)))
	exp := time.Now().Add(time.Hour).Unix()
	good := is.token(t, map[string]any{"iss": "https://issuer.test", "aud": "tokenmeter", "exp": exp, "sub": "alice", "project": "apollo"})

	// Envoy answers 401 for a token it cannot verify or that is missing,
	// 403 for a verified one not meant for this audience.
	for name, bad := range map[string]struct {
		auth   string
		status int
	}{
		"unsigned":       {strings.Join(strings.Split(good, ".")[:2], ".") + ".", 401},
		"other key":      {newIssuer(t).token(t, map[string]any{"iss": "https://issuer.test", "aud": "tokenmeter", "exp": exp, "sub": "mallory"}), 401},
		"expired":        {is.token(t, map[string]any{"iss": "https://issuer.test", "aud": "tokenmeter", "exp": time.Now().Add(-time.Hour).Unix(), "sub": "alice"}), 401},
		"wrong audience": {is.token(t, map[string]any{"iss": "https://issuer.test", "aud": "other", "exp": exp, "sub": "alice"}), 403},
		"none":           {"", 401},
	} {
		h := map[string]string{"x-tokenmeter-project": "forged", "x-mock-prompt-tokens": "1000", "x-mock-completion-tokens": "50"}
		if bad.auth != "" {
			h["authorization"] = "Bearer " + bad.auth
		}
		resp := s.PostTo(proxy, chatBody, h)
		if b := testbed.ReadAll(t, resp); resp.StatusCode != bad.status {
			t.Fatalf("%s token: status %d, want %d from Envoy: %s", name, resp.StatusCode, bad.status, b)
		}
	}
	if n := len(s.Mock.Requests()); n != 0 {
		t.Fatalf("the provider saw %d requests with bad tokens, want none", n)
	}

	h := map[string]string{
		"authorization":        "Bearer " + good,
		"x-tokenmeter-project": "forged", "x-tokenmeter-user": "mallory", "x-tokenmeter-team": "search",
		"x-mock-prompt-tokens": "1000", "x-mock-completion-tokens": "50",
	}
	resp := s.PostTo(proxy, chatBody, h)
	if b := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if n := len(s.Mock.Requests()); n != 1 {
		t.Fatalf("the provider saw %d requests, want 1", n)
	}
	// gpt-4o-mini: 1000 input at 0.15 + 50 output at 0.60 per million = 180 µ$.
	s.WaitMetric("tokenmeter_cost_total", labels("project", "apollo", "team", "search", "model", "gpt-4o-mini", "provider", "openai", "currency", "USD"), usd("0.00018"))
	m := s.Metrics()
	for class, want := range map[string]float64{"input": 1000, "output": 50} {
		if v, _ := testbed.Value(m, "tokenmeter_tokens_total", labels("project", "apollo", "class", class)); v != want {
			t.Errorf("tokens{project=apollo,class=%s} = %v, want %v", class, v, want)
		}
	}
	if v := testbed.Sum(m, "tokenmeter_cost_total", labels("project", "forged")); v != 0 {
		t.Errorf("cost{project=forged} = %v, want 0", v)
	}
	r := exported(t, s, 1)[0]
	if r.Dimensions.Get("project") != "apollo" || r.Dimensions.Get("user") != "alice" || r.Dimensions.Get("team") != "search" ||
		r.Outcome != ledger.OK || r.Cost.String() != "0.00018" || r.Usage.Tokens[usage.Input].N != 1000 || r.Usage.Tokens[usage.Output].N != 50 {
		t.Fatalf("record %+v: want apollo/search/alice, ok, 0.00018, 1000 in, 50 out", r)
	}
}
