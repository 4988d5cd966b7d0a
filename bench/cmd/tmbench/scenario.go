package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/apikey"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// The two sides of every comparison.
const (
	bare = 0 // Envoy without the ext_proc filter: the floor
	with = 1 // the same Envoy with the filter, in front of tokenmeter
)

var sideName = [2]string{"bare", "with"}

// budgetsYAML is every stack's budgets: a roomy money budget that every
// admitted request reserves on and settles (the realistic path), and one
// that the denied scenario has used up.
const budgetsYAML = `  - {name: per-project, match: {project: "*"}, limit: {money: "1000000"}, window: month}
  - {name: exhausted, match: {project: denied}, limit: {requests: 1}, window: total}
`

// The arrangements: how Envoy runs tokenmeter in a scenario.
const (
	split        = ""              // the shipped envoy/envoy.yaml: gate and observer
	envoyGateway = "envoy-gateway" // what Envoy Gateway makes of deploy/envoy-gateway
	upstream     = "upstream"      // envoy/upstream-filter.yaml: gate and observer in the provider cluster's chain
)

// scenario is one kind of request, sent to both Envoys alike.
type scenario struct {
	Name, Title string
	About       string // what the request is and what each side does with it
	Path        string
	Body        []byte
	Header      http.Header
	Events      int    // SSE events in the answer; 0 for a non-stream
	Want        [2]int // the status each side must answer
	// Check validates a non-stream answer's body on one side.
	Check func(side int, body []byte) error
	// Pairs is how many bare/with pairs the 1-client phase sends.
	Pairs int
	// Rates are the fixed open-loop rates, per Envoy, in requests/s.
	Rates []float64
	// SearchFrom is where the capacity search starts; Bound is the p99 of
	// whole requests a sustained rate must stay under, or, when ChunkBound
	// is set (streams), ChunkBound is the p99 of the per-event transit.
	SearchFrom float64
	Bound      time.Duration
	ChunkBound time.Duration
	// Prepare runs once the stack is up, before any measurement.
	Prepare func(r *runner, s *testbed.Stack)
	// Arrangement is how Envoy runs tokenmeter (split, envoyGateway,
	// upstream); the bare Envoy and the no-op floor's are the same config
	// without the ext_proc filters.
	Arrangement string
	// Beside names the split-mode scenario an arrangement's (or a
	// variant's) is compared with in the summary.
	Beside string
	// Config is more tokenmeter config YAML (testbed.Options.Extra), and
	// Variant says in the summary what it changes, e.g. "API keys".
	Config, Variant string
}

// Sizes chosen for the "about 1 KB each way": a 1,024-byte request,
// and 110 reply words make a 1,0xx-byte completion (the report prints the
// exact sizes seen).
const (
	jsonReplyWords   = 110
	streamReplyWords = 196 // + role, finish, usage and [DONE] events = 200
	streamEvents     = streamReplyWords + 4
)

func scenarios() []*scenario {
	list := splitScenarios()
	base := map[string]scenario{}
	for _, sc := range list {
		base[sc.Name] = *sc
	}
	return append(list,
		chatJSONKeys(),
		egScenario(base["chat-json"], "A non-streaming chat through Envoy Gateway's translation"),
		egScenario(base["body-1mb"], "A 1 MiB request body through Envoy Gateway's translation"),
	)
}

// splitScenarios run tokenmeter as envoy/envoy.yaml does.
func splitScenarios() []*scenario {
	return []*scenario{
		chatJSON(),
		chatJSONUpstream(),
		{
			Name: "chat-stream", Title: "Streaming chat, 200 SSE events",
			About: "An OpenAI chat completion with `stream: true` and `stream_options.include_usage` (so both sides get the " +
				"same 200 events: role, 196 words, finish, usage, `[DONE]`). The mock sleeps 1 ms between events " +
				"(`x-mock-chunk-delay-ms: 1`) so each event is its own chunk, as from a live model. With the filters every " +
				"response chunk is also sent to tokenmeter's observer, which Envoy does not wait for.",
			Path: "/v1/chat/completions", Body: chatBody(200, true),
			Header: header("x-tokenmeter-project", "bench", "x-mock-completion-tokens", fmt.Sprint(streamReplyWords),
				"x-mock-chunk-delay-ms", "1"),
			Events: streamEvents,
			Want:   [2]int{200, 200},
			Pairs:  60,
			Rates:  []float64{10, 20, 40},
			// A stream's length is the mock's pacing; what the proxy must
			// sustain is forwarding each event promptly.
			Bound: 500 * time.Millisecond, ChunkBound: 10 * time.Millisecond, SearchFrom: 20,
		},
		{
			Name: "body-1mb", Title: "A 1 MiB request body",
			About: "A non-streaming chat completion whose body is exactly 1 MiB (one long user message); the answer is " +
				"the mock's default 8 words. With the filters Envoy streams the body to tokenmeter's gate " +
				"in chunks and holds them; the gate reads the model once the body ends, estimates the prompt from its " +
				"size, and answers the headers and every chunk at once.",
			Path: "/v1/chat/completions", Body: chatBody(1<<20, false),
			Header: header("x-tokenmeter-project", "bench"),
			Want:   [2]int{200, 200},
			Check:  completion,
			Pairs:  400,
			Rates:  []float64{10, 20, 40},
			Bound:  250 * time.Millisecond, SearchFrom: 20,
		},
		{
			Name: "denied", Title: "A request denied by a budget",
			About: "The chat-json request for project `denied`, whose `requests: 1` budget (window `total`) was used up " +
				"before the run. **The two sides do different work**: the bare Envoy forwards it to the mock (200), " +
				"while with the filters tokenmeter answers 429 at the request headers and the mock never sees it. The " +
				"point is how fast a deny is, not a difference of like with like.",
			Path: "/v1/chat/completions", Body: chatBody(1024, false),
			Header: header("x-tokenmeter-project", "denied", "x-mock-completion-tokens", fmt.Sprint(jsonReplyWords)),
			Want:   [2]int{200, 429},
			Check: func(side int, body []byte) error {
				if side == bare {
					return completion(side, body)
				}
				if !bytes.Contains(body, []byte(`"code":"budget_exceeded"`)) {
					return fmt.Errorf("not a budget deny: %.200s", body)
				}
				return nil
			},
			Pairs: 3000,
			Rates: []float64{100, 250, 500},
			Bound: 50 * time.Millisecond, SearchFrom: 200,
			Prepare: exhaust,
		},
	}
}

// chatJSON is the non-streaming request every goal of issue 7 is judged on.
func chatJSON() *scenario {
	return &scenario{
		Name: "chat-json", Title: "Non-streaming chat, about 1 KB each way",
		About: "An OpenAI chat completion, `stream: false`, with a 1,024-byte request body; the mock answers " +
			fmt.Sprint(jsonReplyWords) + " words (about 1 KB of JSON). With the filters, tokenmeter's gate parses the request " +
			"and reserves on the money budget while Envoy waits; its observer decodes the usage, prices it and settles " +
			"while Envoy sends the answer on.",
		Path: "/v1/chat/completions", Body: chatBody(1024, false),
		Header:  header("x-tokenmeter-project", "bench", "x-mock-completion-tokens", fmt.Sprint(jsonReplyWords)),
		Want:    [2]int{200, 200},
		Check:   completion,
		Pairs:   3000,
		Rates:   []float64{100, 250, 500},
		Bound:   50 * time.Millisecond,
		Prepare: nil, SearchFrom: 200,
	}
}

// chatJSONUpstream is chat-json with tokenmeter as upstream HTTP filters,
// where it goes next to Envoy AI Gateway (issue 14).
func chatJSONUpstream() *scenario {
	sc := chatJSON()
	sc.Name, sc.Title = "chat-json-upstream", "Non-streaming chat, tokenmeter as upstream filters"
	sc.Arrangement, sc.Beside = upstream, "chat-json"
	sc.About = "The chat-json request, with tokenmeter's gate and observer in the provider cluster's filter chain " +
		"(`envoy/upstream-filter.yaml`: after the router, where it sees what the provider is sent) instead of the " +
		"connection manager's. The bare Envoy and the no-op floor's Envoy are the same config without the ext_proc " +
		"filters, so they keep the cluster's chain (the header removal and the upstream codec): the difference is " +
		"tokenmeter's alone. Compare with chat-json, measured in the same run."
	return sc
}

// benchKey is the API key chat-json-keys sends, and benchKeySecret the
// hashing secret its tokenmeter runs with (set in the environment by main).
const (
	benchKey          = "tmk_bench_0123456789abcdefghijklmnopqrstuvwxyz"
	benchKeySecretEnv = "TOKENMETER_BENCH_KEY_SECRET"
	benchKeySecret    = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"
)

// chatJSONKeys is chat-json attributed by an API key instead of a header:
// what key attribution adds (hashing the key, the table lookup), in the
// same run as chat-json.
func chatJSONKeys() *scenario {
	sc := chatJSON()
	sc.Name, sc.Title = "chat-json-keys", "Non-streaming chat, attributed by API key"
	sc.Beside, sc.Variant = "chat-json", "split, API keys"
	sc.About = "The chat-json request with `Authorization: Bearer <key>` and no attribution header: tokenmeter reads " +
		"the key, hashes it (HMAC-SHA256) and finds its project in the key table (`attribution.api_keys`, 1,000 keys in " +
		"the config file), then does what chat-json does. Compare with chat-json, measured in the same run."
	sc.Header = header("authorization", "Bearer "+benchKey, "x-mock-completion-tokens", fmt.Sprint(jsonReplyWords))
	h, err := apikey.NewHasher([]byte(benchKeySecret))
	if err != nil {
		panic(err) // a constant secret of the right length
	}
	var b strings.Builder
	fmt.Fprintf(&b, "attribution:\n  api_keys:\n    secret_env: %s\n    keys:\n", benchKeySecretEnv)
	for i := range 1000 {
		key := fmt.Sprintf("tmk_other_%d", i)
		if i == 500 {
			key = benchKey
		}
		fmt.Fprintf(&b, "      - {id: k%d, hash: %q, dimensions: {project: bench}}\n", i, h.Hash(key).String())
	}
	b.WriteString("  dimensions:\n    - name: project\n      from: [{api_key: project}]\n    - name: api_key\n      from: [{api_key: id}]\n")
	sc.Config = b.String()
	return sc
}

// egScenario is sc through the Envoy that Envoy Gateway makes of
// deploy/envoy-gateway: the gate's body Buffered, after the answer to its
// headers (Envoy Gateway cannot set send_body_without_waiting_for_header_response),
// the observer in shadowMode.
func egScenario(sc scenario, title string) *scenario {
	sc.Name, sc.Title, sc.Arrangement, sc.Beside = "eg-"+sc.Name, title, envoyGateway, sc.Name
	sc.About = "The `" + sc.Beside + "` request, through the Envoy that Envoy Gateway v1.9 makes of `deploy/envoy-gateway` " +
		"(`egctl x translate`, then the static bootstrap of `envoygateway.Static`); the bare Envoy is that config " +
		"without its ext_proc filters. Envoy Gateway cannot set `send_body_without_waiting_for_header_response`, so " +
		"the gate answers the request headers first, then gets the whole body (Buffered) and answers it: two round " +
		"trips where split mode takes one. The observer is the same (shadowMode is observability_mode)."
	return &sc
}

// exhaust spends the denied project's one request, then checks that the
// next one is refused.
func exhaust(r *runner, s *testbed.Stack) {
	body := string(chatBody(1024, false))
	h := map[string]string{"x-tokenmeter-project": "denied"}
	for i, want := range []int{200, 429} {
		resp := s.Post(body, h)
		got := testbed.ReadAll(r, resp)
		if resp.StatusCode != want {
			r.Fatalf("exhausting the budget, request %d: status %d, want %d: %.300s", i, resp.StatusCode, want, got)
		}
	}
}

func completion(_ int, body []byte) error {
	if !bytes.Contains(body, []byte(`"object":"chat.completion"`)) {
		return fmt.Errorf("not a chat completion: %.200s", body)
	}
	return nil
}

// chatBody is a chat request of exactly size bytes (at least 120).
func chatBody(size int, stream bool) []byte {
	head := `{"model":"gpt-4o-mini",`
	if stream {
		head += `"stream":true,"stream_options":{"include_usage":true},`
	}
	head += `"messages":[{"role":"user","content":"`
	const tail = `"}]}`
	n := size - len(head) - len(tail)
	var b strings.Builder
	b.Grow(size)
	b.WriteString(head)
	const words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore "
	for i := 0; i < n; i++ {
		b.WriteByte(words[i%len(words)])
	}
	b.WriteString(tail)
	return []byte(b.String())
}

func header(kv ...string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// readAtMost reads up to n bytes of r, for error messages.
func readAtMost(r io.Reader, n int64) []byte {
	b, _ := io.ReadAll(io.LimitReader(r, n))
	return b
}
