package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// adminAPI is a fake admin API: it answers each "METHOD /path" with a fixed
// body (or status 404) and records what it was sent.
type adminAPI struct {
	URL string
	mu  sync.Mutex
	got []string // "METHOD /path?query auth=TOKEN body"
}

func newAdminAPI(t *testing.T, answers map[string]string) *adminAPI {
	t.Helper()
	a := &adminAPI{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.got = append(a.got, r.Method+" "+r.URL.RequestURI()+" auth="+r.Header.Get("Authorization")+" "+string(body))
		a.mu.Unlock()
		answer, ok := answers[r.Method+" "+r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			answer = `{"error":"no budget \"nope\""}`
		}
		io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

func (a *adminAPI) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.got)
}

func TestBudgets(t *testing.T) {
	// The API's JSON as it comes, without a final newline.
	const listed = `{"budgets":[{"name":"rt","source":"runtime","unit":"requests","limit":"2","period":"day",` +
		`"keys":[{"key":"project=rt","limit":"2","spent":"2","reserved":"0","remaining":"0","resets_at":"2026-11-23T00:00:00Z"}]}]}`
	const setAnswer = `{"name":"rt","source":"runtime","unit":"requests","limit":"2","period":"day","keys":[]}`
	api := newAdminAPI(t, map[string]string{
		"GET /v1/budgets":           listed,
		"PUT /v1/budgets/rt":        setAnswer,
		"DELETE /v1/budgets/rt":     "",
		"POST /v1/budgets/rt/reset": "",
	})
	t.Setenv("TM_TEST_TOKEN", "s3cret")
	def := filepath.Join(t.TempDir(), "rt.json")
	if err := os.WriteFile(def, []byte(`{"name":"rt","limit":{"requests":2},"window":"day"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []apiCase{
		{"list --json ends with a newline", []string{"list", "--json"}, exitOK, `{
  "budgets": [
    {
      "name": "rt",
      "source": "runtime",
      "unit": "requests",
      "limit": "2",
      "period": "day",
      "keys": [
        {
          "key": "project=rt",
          "limit": "2",
          "spent": "2",
          "reserved": "0",
          "remaining": "0",
          "resets_at": "2026-11-23T00:00:00Z"
        }
      ]
    }
  ]
}
`, "", "GET /v1/budgets auth= "},
		{"list as a table", []string{"list"}, exitOK,
			"BUDGET  SOURCE   LIMIT       PER  KEY         SPENT  RESERVED  REMAINING  RESETS\n" +
				"rt      runtime  2 requests  day  project=rt  2      0         0          2026-11-23T00:00:00Z\n", "", "GET /v1/budgets auth= "},
		{"the token from --token-env", []string{"list", "--token-env", "TM_TEST_TOKEN"}, exitOK,
			"BUDGET  SOURCE   LIMIT       PER  KEY         SPENT  RESERVED  REMAINING  RESETS\n" +
				"rt      runtime  2 requests  day  project=rt  2      0         0          2026-11-23T00:00:00Z\n", "", "GET /v1/budgets auth=Bearer s3cret "},
		{"set names the definition", []string{"set", "rt", `{"limit":{"requests":2},"window":"day"}`}, exitOK,
			"budget rt set: 2 requests per day\n", "", `PUT /v1/budgets/rt auth= {"limit":{"requests":2},"name":"rt","window":"day"}`},
		{"set from a file, flags after the name", []string{"set", "rt", "--file", def}, exitOK,
			"budget rt set: 2 requests per day\n", "", `PUT /v1/budgets/rt auth= {"name":"rt","limit":{"requests":2},"window":"day"}`},
		{"set refuses a definition naming another budget", []string{"set", "rt", `{"name":"other"}`}, exitConfig,
			"", "tokenmeter: the definition names \"other\", not \"rt\"\n", ""},
		{"delete", []string{"delete", "rt"}, exitOK, "budget rt deleted\n", "", "DELETE /v1/budgets/rt auth= "},
		{"reset one key", []string{"reset", "rt", "--key", "project=rt"}, exitOK, "budget rt reset\n", "",
			"POST /v1/budgets/rt/reset?key=project%3Drt auth= "},
		{"the API's error", []string{"delete", "nope"}, exitFail, "", "tokenmeter: admin API: no budget \"nope\"\n",
			"DELETE /v1/budgets/nope auth= "},
	}
	runAPICases(t, api, "budgets", tests)
}

// apiCase is one command run against the fake admin API: its exit status,
// its output, and the one request the API must have been sent ("" for none).
type apiCase struct {
	name    string
	args    []string
	code    int
	stdout  string
	stderr  string
	request string
}

// runAPICases runs each case as `tokenmeter <command> <args> --admin <api>`.
func runAPICases(t *testing.T, api *adminAPI, command string, tests []apiCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(api.requests())
			code, stdout, stderr := runCLI(append(append([]string{command}, tt.args...), "--admin", api.URL)...)
			if code != tt.code || stdout != tt.stdout || stderr != tt.stderr {
				t.Fatalf("exit %d, want %d\nstdout %q\nwant   %q\nstderr %q\nwant   %q", code, tt.code, stdout, tt.stdout, stderr, tt.stderr)
			}
			var want []string
			if tt.request != "" {
				want = []string{tt.request}
			}
			if got := api.requests()[before:]; !slices.Equal(got, want) {
				t.Fatalf("the API was sent %q, want %q", got, want)
			}
		})
	}
}
