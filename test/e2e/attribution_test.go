package e2e

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	envoygateway "github.com/tokenmeter/tokenmeter/deploy/envoy-gateway"
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

// spiffeID is the client workload's identity, as a mesh would issue it.
const spiffeID = "spiffe://cluster.local/ns/ml/sa/search"

// testPKI is a CA, a server certificate for 127.0.0.1 and a client
// certificate whose URI SAN is spiffeID, as PEM files in dir.
type testPKI struct {
	dir    string
	roots  *x509.CertPool
	client tls.Certificate
}

func newPKI(t *testing.T) testPKI {
	t.Helper()
	p := testPKI{dir: t.TempDir(), roots: x509.NewCertPool()}
	caKey, caCert := certificate(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	p.roots.AddCert(caCert)
	serverKey, serverCert := certificate(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "envoy"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, caCert, caKey)
	uri, err := url.Parse(spiffeID)
	if err != nil {
		t.Fatal(err)
	}
	clientKey, clientCert := certificate(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "search"}, URIs: []*url.URL{uri},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caCert, caKey)
	p.client = tls.Certificate{Certificate: [][]byte{clientCert.Raw}, PrivateKey: clientKey}
	p.write(t, "ca.pem", "CERTIFICATE", caCert.Raw)
	p.write(t, "server.pem", "CERTIFICATE", serverCert.Raw)
	der, err := x509.MarshalPKCS8PrivateKey(serverKey)
	if err != nil {
		t.Fatal(err)
	}
	p.write(t, "server-key.pem", "PRIVATE KEY", der)
	return p
}

var serial atomic.Int64

// certificate signs tmpl with parent's key (itself when parent is nil).
func certificate(t *testing.T, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(serial.Add(1))
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, c
}

func (p testPKI) write(t *testing.T, name, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(p.dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// withMTLS makes the listener require a client certificate signed by the
// test CA and has the gate ask Envoy for the request attribute
// connection.uri_san_peer_certificate (the peer certificate's URI SAN).
func withMTLS(t *testing.T, config []byte, p testPKI) []byte {
	t.Helper()
	chains := []byte("    filter_chains:\n    - filters:\n")
	tlsChain := fmt.Sprintf(`    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates:
            - certificate_chain: {filename: %q}
              private_key: {filename: %q}
            validation_context:
              trusted_ca: {filename: %q}
      filters:
`, filepath.Join(p.dir, "server.pem"), filepath.Join(p.dir, "server-key.pem"), filepath.Join(p.dir, "ca.pem"))
	receiving := []byte("              metadata_options:\n                receiving_namespaces:\n                  untyped: [tokenmeter, tokenmeter.handoff, tokenmeter.feedback]\n")
	if bytes.Count(config, chains) != 1 || bytes.Count(config, receiving) != 1 {
		t.Fatalf("the listener or the gate's metadata_options are not where expected:\n%s", config)
	}
	config = bytes.Replace(config, chains, []byte(tlsChain), 1)
	return bytes.Replace(config, receiving, append(bytes.Clone(receiving), "              request_attributes: [connection.uri_san_peer_certificate]\n"...), 1)
}

// Issue 15: over mTLS, the peer's workload identity (its certificate's
// SPIFFE ID, Envoy's connection.uri_san_peer_certificate attribute) is the team: a header
// claiming another team loses to it.
func TestAttributionFromPeerIdentity(t *testing.T) {
	s := testbed.New(t, testbed.Options{Bin: bin, Extra: `attribution:
  dimensions:
    - {name: project, header: x-tokenmeter-project}
    - name: team
      from:
        - {attribute: connection.uri_san_peer_certificate}
        - {header: x-tokenmeter-team}
    - {name: user, header: x-tokenmeter-user}
`})
	p := newPKI(t)
	proxy := s.StartProxy(withMTLS(t, s.EnvoyConfig(s.TM.GRPC), p))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.roots, Certificates: []tls.Certificate{p.client}}}}
	req, err := http.NewRequest("POST", strings.Replace(proxy.URL, "http://", "https://", 1)+"/v1/chat/completions", strings.NewReader(chatBody))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"content-type": "application/json", "x-tokenmeter-project": "alpha", "x-tokenmeter-team": "forged",
		"x-mock-prompt-tokens": "1000", "x-mock-completion-tokens": "50"} {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	// gpt-4o-mini: 1000 input at 0.15 + 50 output at 0.60 per million = 180 µ$.
	s.WaitMetric("tokenmeter_cost_total", labels("project", "alpha", "team", spiffeID, "model", "gpt-4o-mini", "provider", "openai", "currency", "USD"), usd("0.00018"))
	if v, _ := testbed.Value(s.Metrics(), "tokenmeter_tokens_total", labels("team", spiffeID, "class", "input")); v != 1000 {
		t.Errorf("tokens{team=%s,class=input} = %v, want 1000", spiffeID, v)
	}
	r := exported(t, s, 1)[0]
	if r.Dimensions.Get("team") != spiffeID || r.Dimensions.Get("project") != "alpha" || r.Outcome != ledger.OK || r.Cost.String() != "0.00018" {
		t.Fatalf("record %+v: want team %s, project alpha, ok, 0.00018", r, spiffeID)
	}
}

// egJWTAttribution reads project from the verified token's claims in
// dynamic metadata (Envoy Gateway names jwt_authn's metadata entry after the
// provider) and user from the header the SecurityPolicy's claimToHeaders
// sets; team only from a header, which no one but the client sends.
const egJWTAttribution = `attribution:
  dimensions:
    - name: project
      from:
        - {metadata: {namespace: envoy.filters.http.jwt_authn, path: [corp, project]}}
    - {name: team, header: x-tokenmeter-team}
    - {name: user, header: x-tokenmeter-user}
`

// egWithJWT is the Envoy Gateway resources the tests run (envoygateway.Input)
// plus a SecurityPolicy that verifies JWTs against jwks on the route and
// puts the sub claim in x-tokenmeter-user, and the gate allowed to read
// jwt_authn's metadata: docs/security.md's two ways on Envoy Gateway.
func egWithJWT(jwks string) func() ([]byte, error) {
	return func() ([]byte, error) {
		in, err := envoygateway.Input()
		if err != nil {
			return nil, err
		}
		var out bytes.Buffer
		for dec := yaml.NewDecoder(bytes.NewReader(in)); ; {
			var doc map[string]any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("envoy gateway input: %w", err)
			}
			if doc["kind"] == "EnvoyExtensionPolicy" {
				spec, _ := doc["spec"].(map[string]any)
				entries, _ := spec["extProc"].([]any)
				if len(entries) == 0 {
					return nil, fmt.Errorf("the EnvoyExtensionPolicy has no extProc entries: %v", spec)
				}
				gate, _ := entries[0].(map[string]any)
				meta, _ := gate["metadata"].(map[string]any)
				if meta == nil {
					return nil, fmt.Errorf("the gate has no metadata section: %v", gate)
				}
				meta["accessibleNamespaces"] = []any{"envoy.filters.http.jwt_authn"}
			}
			b, err := yaml.Marshal(doc)
			if err != nil {
				return nil, fmt.Errorf("envoy gateway input: %w", err)
			}
			out.WriteString("---\n")
			out.Write(b)
		}
		jwksJSON, err := json.Marshal(jwks)
		if err != nil {
			return nil, err
		}
		out.WriteString(`---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {name: jwt, namespace: llm}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: openai}]
  jwt:
    providers:
    - name: corp
      issuer: https://issuer.test
      audiences: [tokenmeter]
      localJWKS: {type: Inline, inline: ` + string(jwksJSON) + `}
      claimToHeaders:
      - {header: x-tokenmeter-user, claim: sub}
`)
		return out.Bytes(), nil
	}
}

// Issue 15 on Envoy Gateway, as shipped (the ClientTrafficPolicy removes the
// client's x-tokenmeter-* headers first): a SecurityPolicy's JWT attributes
// the request, by a claim in dynamic metadata (project) and by claimToHeaders
// (user), which runs after the removal; the client's forged headers count
// for nothing (team stays unknown), and the provider receives none of
// tokenmeter's headers. A request without a token gets Envoy's 401 and never
// reaches the provider.
func TestEnvoyGatewayAttributionFromJWT(t *testing.T) {
	is := newIssuer(t)
	s := testbed.New(t, testbed.Options{Bin: bin, AsShipped: true, Extra: egJWTAttribution,
		Arrangement: envoygateway.ArrangementOf(egWithJWT(is.jwks(t)))})
	forged := map[string]string{
		"x-tokenmeter-project": "forged", "x-tokenmeter-team": "forged", "x-tokenmeter-user": "mallory",
		"x-mock-prompt-tokens": "1000", "x-mock-completion-tokens": "50",
	}
	if resp := s.Post(chatBody, forged); resp.StatusCode != 401 {
		t.Fatalf("no token: status %d, want 401 from Envoy: %s", resp.StatusCode, testbed.ReadAll(t, resp))
	} else {
		testbed.ReadAll(t, resp)
	}
	if n := len(s.Mock.Requests()); n != 0 {
		t.Fatalf("the provider saw %d requests without a token", n)
	}
	h := map[string]string{"authorization": "Bearer " + is.token(t, map[string]any{
		"iss": "https://issuer.test", "aud": "tokenmeter", "exp": time.Now().Add(time.Hour).Unix(), "sub": "alice", "project": "apollo"})}
	for k, v := range forged {
		h[k] = v
	}
	resp := s.Post(chatBody, h)
	if b := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	up := s.Mock.Requests()
	if len(up) != 1 {
		t.Fatalf("the provider saw %d requests, want 1", len(up))
	}
	for k := range up[0].Header {
		if strings.HasPrefix(strings.ToLower(k), "x-tokenmeter-") {
			t.Errorf("the provider received %s: %q", k, up[0].Header.Get(k))
		}
	}
	r := exported(t, s, 1)[0]
	if r.Dimensions.Get("project") != "apollo" || r.Dimensions.Get("user") != "alice" || r.Dimensions.Get("team") != "unknown" ||
		r.Outcome != ledger.OK || r.Cost.String() != "0.00018" {
		t.Fatalf("record %+v: want project apollo, user alice, team unknown, ok, 0.00018", r)
	}
}
