package e2e

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	envoygateway "github.com/tokenmeter/tokenmeter/deploy/envoy-gateway"
	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// spoofDimensions reads the default dimensions and one more, foo, all from
// headers: tokenmeter believes whatever reaches it there.
const spoofDimensions = `attribution:
  dimensions:
    - {name: project, header: x-tokenmeter-project}
    - {name: team, header: x-tokenmeter-team}
    - {name: user, header: x-tokenmeter-user}
    - {name: foo, header: x-tokenmeter-foo}
`

// spoofed is what a client sends to charge its requests to someone else,
// an invented dimension header included; the case of the names is the
// client's to choose.
var spoofed = map[string]string{
	"x-tokenmeter-project": "victim", "X-TOKENMETER-TEAM": "victims", "x-tokenmeter-user": "alice", "X-Tokenmeter-Foo": "bar",
	"x-mock-prompt-tokens": "1000", "x-mock-completion-tokens": "50",
}

// Issue 15: every shipped arrangement ignores the attribution headers a
// client sends. Envoy removes every x-tokenmeter-* request header before
// any filter runs (envoy.yaml's early header mutation, Envoy Gateway's
// ClientTrafficPolicy earlyRequestHeaders), so the gate reads none: the
// requests are attributed unknown, the budget of the project they name
// (victim, one request a day) is never charged, and the provider receives
// no x-tokenmeter-* header at all. The control, the tests' trusting
// variant (envoy.TrustClientHeaders), shows what the removal prevents: the
// same requests are charged to victim, the second refused, and the
// invented header, which no route lists, reaches the provider.
func TestSpoofedAttributionIgnored(t *testing.T) {
	ignored := map[string]string{"project": attribution.Unknown, "team": attribution.Unknown, "user": attribution.Unknown, "foo": attribution.Unknown}
	believed := map[string]string{"project": "victim", "team": "victims", "user": "alice", "foo": "bar"}
	for _, tt := range []struct {
		name       string
		opts       testbed.Options
		wantDims   map[string]string // each charged record's
		wantStatus [2]int
		wantSpent  string   // victim-daily's
		wantAtUp   []string // the x-tokenmeter-* headers the provider gets
	}{
		{"split", testbed.Options{AsShipped: true}, ignored, [2]int{200, 200}, "", nil},
		{"inline", testbed.Options{AsShipped: true, Inline: true}, ignored, [2]int{200, 200}, "", nil},
		{"upstream filters", testbed.Options{AsShipped: true, UpstreamFilters: true}, ignored, [2]int{200, 200}, "", nil},
		{"envoy gateway", testbed.Options{AsShipped: true, Arrangement: envoygateway.Arrangement}, ignored, [2]int{200, 200}, "", nil},
		{"control: trusting the client", testbed.Options{}, believed, [2]int{200, 429}, "1", []string{"x-tokenmeter-foo"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var atUp []string
			o := tt.opts
			o.Bin, o.Extra = bin, spoofDimensions
			o.Budgets = "  - {name: victim-daily, match: {project: victim}, limit: {requests: 1}, window: day}\n"
			o.Upstream = func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					for k := range r.Header {
						if k = strings.ToLower(k); strings.HasPrefix(k, "x-tokenmeter-") && !slices.Contains(atUp, k) {
							atUp = append(atUp, k)
						}
					}
					mu.Unlock()
					next.ServeHTTP(w, r)
				})
			}
			s := testbed.New(t, o)
			for i, want := range tt.wantStatus {
				resp := s.Post(chatBody, spoofed)
				if b := testbed.ReadAll(t, resp); resp.StatusCode != want {
					t.Fatalf("request %d: status %d, want %d: %s", i+1, resp.StatusCode, want, b)
				}
			}
			for _, r := range exported(t, s, 2) {
				if r.Outcome == ledger.Denied {
					continue
				}
				// gpt-4o-mini: 1000 input at 0.15 + 50 output at 0.60 per million.
				if r.Outcome != ledger.OK || r.Cost.String() != "0.00018" {
					t.Errorf("record %+v: want ok, 0.00018", r)
				}
				for d, want := range tt.wantDims {
					if got := r.Dimensions.Get(d); got != want {
						t.Errorf("the record's %s is %q, want %q", d, got, want)
					}
				}
			}
			// The victim's budget: never charged (no key at all), or, when
			// the client is believed, its one request.
			var spent []string
			for _, k := range listBudgets(t, s)["victim-daily"].Keys {
				if k.Spent != "0" {
					spent = append(spent, k.Spent)
				}
			}
			if strings.Join(spent, ",") != tt.wantSpent {
				t.Errorf("victim-daily spent %q, want %q", spent, tt.wantSpent)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(atUp, tt.wantAtUp) {
				t.Errorf("the provider received %q, want %q", atUp, tt.wantAtUp)
			}
		})
	}
}
