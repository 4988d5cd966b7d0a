package ledgergen

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// trafficModels: 10 models of 4 providers, with prices per million tokens.
var trafficModels = []struct {
	provider, dialect, model string
	in, out                  money.PerMillion
}{
	{"openai", "openai_chat", "gpt-4o", mpm("2.5"), mpm("10")},
	{"openai", "openai_chat", "gpt-4o-mini", mpm("0.15"), mpm("0.6")},
	{"openai", "openai_responses", "o3", mpm("2"), mpm("8")},
	{"anthropic", "anthropic_messages", "claude-sonnet-4", mpm("3"), mpm("15")},
	{"anthropic", "anthropic_messages", "claude-haiku-4", mpm("1"), mpm("5")},
	{"anthropic", "anthropic_messages", "claude-opus-4", mpm("15"), mpm("75")},
	{"google", "gemini", "gemini-2.5-pro", mpm("1.25"), mpm("10")},
	{"google", "gemini", "gemini-2.5-flash", mpm("0.3"), mpm("2.5")},
	{"bedrock", "bedrock_converse", "amazon.nova-pro-v1:0", mpm("0.8"), mpm("3.2")},
	{"bedrock", "bedrock_converse", "meta.llama3-3-70b-instruct-v1:0", mpm("0.72"), mpm("0.72")},
}

func mpm(s string) money.PerMillion { return money.PerMillion(money.MustParse(s)) }

var trafficOutcomes = []ledger.Outcome{ledger.Denied, ledger.UpstreamError, ledger.Partial, ledger.Estimated}

// Traffic makes realistic traffic, for benchmarks: 5 teams of 4 users,
// each team with 10 projects (50 in all), 10 models of 4 providers. Real
// traffic is skewed, so projects and models are drawn from Zipf
// distributions, and a user works on their team's projects; 93% of requests
// end ok. Each record has a UUID request id and the provider's raw numbers.
type Traffic struct {
	rng            *rand.Rand
	project, model *rand.Zipf
	n              int
}

// NewTraffic returns a generator seeded with seed: the same seed, the same
// records.
func NewTraffic(seed uint64) *Traffic {
	rng := rand.New(rand.NewPCG(seed, seed))
	return &Traffic{rng: rng, project: rand.NewZipf(rng, 1.2, 2, 49), model: rand.NewZipf(rng, 1.1, 1, 9)}
}

// Record returns the next record, starting at start.
func (g *Traffic) Record(start time.Time) *ledger.Record {
	g.n++
	rng := g.rng
	p := int(g.project.Uint64())
	team := p % 5
	m := trafficModels[g.model.Uint64()]
	r := &ledger.Record{
		RequestID: fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xffff, rng.Uint32()&0xffff, rng.Uint64()&0xffffffffffff),
		Start:     start, Duration: time.Duration(200+rng.IntN(20_000)) * time.Millisecond,
		Dimensions: attribution.Dimensions{Names: TrafficDims, Values: []string{
			fmt.Sprintf("project-%02d", p), fmt.Sprintf("team-%d", team), fmt.Sprintf("user-%02d", team*4+rng.IntN(4))}},
		Provider: m.provider, Dialect: m.dialect, Model: m.model, ResponseModel: m.model, PricedModel: m.model,
		Status: 200, Stream: rng.IntN(3) != 0, Outcome: ledger.OK, Priced: true, Currency: money.USD, ReportingCurrency: money.USD,
	}
	r.TTFT = r.Duration / 10
	if x := rng.IntN(100); x < 7 {
		r.Outcome = trafficOutcomes[x%len(trafficOutcomes)]
	}
	if r.Outcome == ledger.Denied {
		r.Status, r.Budget, r.Reason = 0, "team-monthly", "budget"
		return r
	}
	in, out := int64(100+rng.IntN(6000)), int64(50+rng.IntN(1500))
	r.Usage.Set(usage.Input, in)
	r.Usage.Set(usage.Output, out)
	if rng.IntN(3) == 0 {
		r.Usage.Set(usage.CacheRead, int64(rng.IntN(20_000)))
	}
	r.Usage.Raw = []usage.Field{{Name: "prompt_tokens", Value: in}, {Name: "completion_tokens", Value: out}}
	var s money.Sum
	s.Add(in, m.in)
	s.Add(r.Usage.Get(usage.CacheRead), m.in/10)
	s.Add(out, m.out)
	r.ListCost, _ = s.Amount()
	r.Cost, r.ReportingCost = r.ListCost, r.ListCost
	return r
}

// TrafficDims are the dimension names of Traffic's records.
var TrafficDims = []string{"project", "team", "user"}

// Jitter returns a random duration in [0, d), from the generator's stream,
// to spread starts.
func (g *Traffic) Jitter(d time.Duration) time.Duration { return time.Duration(g.rng.Int64N(int64(d))) }
