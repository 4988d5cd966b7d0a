package otelmetrics

import (
	"context"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/metrics"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/otelmetrics/otlptest"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

var dimNames = []string{"project", "team"}

func record(dialect, provider, model string, outcome ledger.Outcome, cost string, project string) *ledger.Record {
	r := &ledger.Record{Dialect: dialect, Provider: provider, Model: model, PricedModel: model, Priced: true,
		Outcome: outcome, Currency: "USD", Cost: money.MustParse(cost), Duration: 1500 * time.Millisecond,
		Dimensions: attribution.Dimensions{Names: dimNames, Values: []string{project, "search"}}}
	return r
}

// The records a test sends, and what the receiver must get for them.
func sendRecords(s *Sink) {
	// Refused at the gate: an operation with an error, no tokens, and its
	// project takes no slot of the cap of one.
	denied := record("openai_chat", "openai", "gpt-4o-mini", ledger.Denied, "0", "zeta")
	denied.Duration = 2 * time.Millisecond
	s.Append(denied)

	// prompt 1200 of which 200 cached; completion 80 of which 30 reasoning:
	// 1000×0.15 + 200×0.075 + 50×0.60 + 30×0.60 per million = $0.000213.
	chat := record("openai_chat", "openai", "gpt-4o-mini", ledger.OK, "0.000213", "alpha")
	chat.ResponseModel, chat.Stream, chat.TTFT = "gpt-4o-mini-2024-07-18", true, 250*time.Millisecond
	chat.Usage.Set(usage.Input, 1000)
	chat.Usage.Set(usage.CacheRead, 200)
	chat.Usage.Set(usage.Output, 50)
	chat.Usage.Set(usage.Reasoning, 30)
	s.Append(chat)

	// Ten requests of $0.1: float64 additions would make 0.9999999999999999.
	for range 10 {
		m := record("anthropic_messages", "anthropic", "claude-sonnet-4", ledger.OK, "0.1", "alpha")
		m.Usage.Set(usage.Input, 100)
		m.Usage.Set(usage.CacheWrite, 10)
		m.Usage.Set(usage.Output, 5)
		s.Append(m)
	}

	// Units and no tokens (Whisper bills audio seconds): money all the same.
	whisper := record("openai_audio", "openai", "whisper-1", ledger.OK, "0.0061", "alpha")
	whisper.Usage.SetUnit(usage.AudioMillis, 61_000)
	s.Append(whisper)

	// A second project past the cap of one: exported as other, and counted.
	beta := record("gemini", "google", "gemini-2.0-flash", ledger.OK, "0.000004", "beta")
	beta.Usage.Set(usage.Input, 40)
	s.Append(beta)
}

func newSink(t *testing.T, protocol, endpoint string, interval time.Duration) *Sink {
	t.Helper()
	o := Options{Endpoint: endpoint, Protocol: protocol, Interval: interval, Timeout: 5 * time.Second,
		Headers: map[string]string{"x-api-key": "k-1"}, Resource: map[string]string{"deployment.environment.name": "test"},
		Version: "v-test", Currency: "USD", Labels: metrics.DimensionNames(dimNames...)}
	o.Labels.Dimensions[0].MaxValues = 1
	s, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Records through the sink, a forced flush, and an OTLP receiver that gets
// the exact data points: tokens per type and class, exact cost, the
// duration with its error, and every attribute, over both protocols.
func TestExportsExactGenAIMetrics(t *testing.T) {
	for _, protocol := range []string{GRPC, HTTP} {
		t.Run(protocol, func(t *testing.T) {
			rcv := otlptest.Start(t)
			endpoint := rcv.GRPCEndpoint()
			if protocol == HTTP {
				endpoint = rcv.HTTPEndpoint()
			}
			s := newSink(t, protocol, endpoint, time.Hour)
			defer s.Shutdown(context.Background())
			sendRecords(s)
			if err := s.ForceFlush(context.Background()); err != nil {
				t.Fatal(err)
			}
			reqs := rcv.Wait(t, 1, 10*time.Second)
			if h := rcv.Headers()[0]["x-api-key"]; h != "k-1" {
				t.Errorf("x-api-key header %q, want k-1", h)
			}
			checkResource(t, reqs[0])
			checkExport(t, reqs[0])
		})
	}
}

// Shutdown exports what was recorded since the last export: the last
// requests before a stop are not lost with the process.
func TestShutdownFlushes(t *testing.T) {
	rcv := otlptest.Start(t)
	s := newSink(t, GRPC, rcv.GRPCEndpoint(), time.Hour)
	sendRecords(s)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	reqs := rcv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d export requests after shutdown, want 1", len(reqs))
	}
	checkExport(t, reqs[0])
}

func checkResource(t *testing.T, req *colmetricpb.ExportMetricsServiceRequest) {
	t.Helper()
	rm := req.GetResourceMetrics()
	if len(rm) != 1 || len(rm[0].GetScopeMetrics()) != 1 {
		t.Fatalf("want one resource and one scope, got %v", req)
	}
	res := otlptest.Attrs(rm[0].GetResource().GetAttributes())
	if res["service.instance.id"] == "" {
		t.Errorf("no service.instance.id in %v", res)
	}
	delete(res, "service.instance.id")
	if want := map[string]string{"service.name": "tokenmeter", "service.version": "v-test", "deployment.environment.name": "test"}; !maps.Equal(res, want) {
		t.Errorf("resource %v, want %v", res, want)
	}
	scope := rm[0].GetScopeMetrics()[0]
	if scope.GetScope().GetName() != ScopeName || scope.GetScope().GetVersion() != "v-test" ||
		scope.GetSchemaUrl() != "https://opentelemetry.io/schemas/1.41.0" {
		t.Errorf("scope %v, schema %q", scope.GetScope(), scope.GetSchemaUrl())
	}
}

// attrs builds an expected attribute set: the request's GenAI attributes,
// then more.
func attrs(op, provider, model string, more ...string) map[string]string {
	m := map[string]string{"gen_ai.operation.name": op, "gen_ai.provider.name": provider, "gen_ai.request.model": model}
	for i := 0; i+1 < len(more); i += 2 {
		m[more[i]] = more[i+1]
	}
	return m
}

var (
	alpha  = []string{"tokenmeter.attribution.project", "alpha", "tokenmeter.attribution.team", "search"}
	chat   = attrs("chat", "openai", "gpt-4o-mini", append([]string{"gen_ai.response.model", "gpt-4o-mini-2024-07-18"}, alpha...)...)
	claude = attrs("chat", "anthropic", "claude-sonnet-4", alpha...)
	gemini = attrs("generate_content", "gcp.gemini", "gemini-2.0-flash",
		"tokenmeter.attribution.project", "other", "tokenmeter.attribution.team", "search")
)

func plus(m map[string]string, kv ...string) map[string]string {
	out := maps.Clone(m)
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func checkExport(t *testing.T, req *colmetricpb.ExportMetricsServiceRequest) {
	t.Helper()
	usageM := exported(t, req, "gen_ai.client.token.usage", "{token}")
	if !slices.Equal(usageM.GetHistogram().GetDataPoints()[0].GetExplicitBounds(), tokenBuckets) {
		t.Errorf("token buckets %v", usageM.GetHistogram().GetDataPoints()[0].GetExplicitBounds())
	}
	for _, tt := range []struct {
		attrs      map[string]string
		count, sum uint64
	}{
		// cache reads and writes are input, reasoning is output.
		{plus(chat, "gen_ai.token.type", "input"), 1, 1200},
		{plus(chat, "gen_ai.token.type", "output"), 1, 80},
		{plus(claude, "gen_ai.token.type", "input"), 10, 1100},
		{plus(claude, "gen_ai.token.type", "output"), 10, 50},
		{plus(gemini, "gen_ai.token.type", "input"), 1, 40},
	} {
		p := histPoint(t, usageM, tt.attrs)
		if p.GetCount() != tt.count || p.GetSum() != float64(tt.sum) {
			t.Errorf("token usage %v: count %d sum %v, want %d %d", tt.attrs, p.GetCount(), p.GetSum(), tt.count, tt.sum)
		}
	}
	if n := len(usageM.GetHistogram().GetDataPoints()); n != 5 {
		t.Errorf("%d token usage points, want 5 (the denied request has none)", n)
	}

	tokens := exported(t, req, "tokenmeter.tokens", "{token}")
	for _, tt := range []struct {
		attrs map[string]string
		want  int64
	}{
		{plus(chat, "tokenmeter.token.class", "input"), 1000},
		{plus(chat, "tokenmeter.token.class", "cache_read"), 200},
		{plus(chat, "tokenmeter.token.class", "output"), 50},
		{plus(chat, "tokenmeter.token.class", "reasoning"), 30},
		{plus(claude, "tokenmeter.token.class", "cache_write"), 100},
	} {
		if v := sumPoint(t, tokens, tt.attrs).GetAsInt(); v != tt.want {
			t.Errorf("tokens %v = %d, want %d", tt.attrs, v, tt.want)
		}
	}

	units := exported(t, req, "tokenmeter.units", "1")
	audio := attrs("transcribe_audio", "openai", "whisper-1", append([]string{"tokenmeter.unit", "audio_ms"}, alpha...)...)
	if v := sumPoint(t, units, audio).GetAsInt(); v != 61_000 || len(units.GetSum().GetDataPoints()) != 1 {
		t.Errorf("units %v = %d, want 61000 and no other point", audio, v)
	}

	cost := exported(t, req, "tokenmeter.cost", "{USD}")
	if !cost.GetSum().GetIsMonotonic() || cost.GetSum().GetAggregationTemporality() != metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
		t.Errorf("cost is not a cumulative monotonic sum: %v", cost.GetSum())
	}
	for _, tt := range []struct {
		attrs map[string]string
		want  float64
	}{
		{plus(chat, "tokenmeter.currency", "USD"), 0.000213},
		{plus(claude, "tokenmeter.currency", "USD"), 1}, // exactly: summed in nano-units
		{plus(gemini, "tokenmeter.currency", "USD"), 0.000004},
		{attrs("transcribe_audio", "openai", "whisper-1", append([]string{"tokenmeter.currency", "USD"}, alpha...)...), 0.0061},
	} {
		if v := sumPoint(t, cost, tt.attrs).GetAsDouble(); v != tt.want {
			t.Errorf("cost %v = %v, want exactly %v", tt.attrs, v, tt.want)
		}
	}

	dur := exported(t, req, "gen_ai.client.operation.duration", "s")
	if !slices.Equal(dur.GetHistogram().GetDataPoints()[0].GetExplicitBounds(), durationBuckets) {
		t.Errorf("duration buckets %v", dur.GetHistogram().GetDataPoints()[0].GetExplicitBounds())
	}
	// No attribution on the duration (like tokenmeter_requests_total).
	deniedAttrs := attrs("chat", "openai", "gpt-4o-mini", "tokenmeter.outcome", "denied", "error.type", "denied")
	if p := histPoint(t, dur, deniedAttrs); p.GetCount() != 1 || p.GetSum() != 0.002 {
		t.Errorf("denied duration: count %d sum %v", p.GetCount(), p.GetSum())
	}
	okClaude := attrs("chat", "anthropic", "claude-sonnet-4", "tokenmeter.outcome", "ok")
	if p := histPoint(t, dur, okClaude); p.GetCount() != 10 || p.GetSum() != 15 {
		t.Errorf("claude duration: count %d sum %v", p.GetCount(), p.GetSum())
	}

	first := exported(t, req, "gen_ai.client.operation.time_to_first_chunk", "s")
	ttfc := attrs("chat", "openai", "gpt-4o-mini", "gen_ai.response.model", "gpt-4o-mini-2024-07-18")
	if p := histPoint(t, first, ttfc); p.GetCount() != 1 || p.GetSum() != 0.25 || len(first.GetHistogram().GetDataPoints()) != 1 {
		t.Errorf("time to first chunk: %v", first.GetHistogram().GetDataPoints())
	}

	over := exported(t, req, "tokenmeter.attribute.overflow", "{value}")
	if v := sumPoint(t, over, map[string]string{"tokenmeter.attribute": "project"}).GetAsInt(); v != 1 {
		t.Errorf("overflow{project} = %d, want 1", v)
	}
}

func exported(t *testing.T, req *colmetricpb.ExportMetricsServiceRequest, name, unit string) *metricpb.Metric {
	t.Helper()
	m := otlptest.Metric(req, name)
	if m == nil {
		t.Fatalf("no %s in the export", name)
	}
	if m.GetUnit() != unit {
		t.Errorf("%s: unit %q, want %q", name, m.GetUnit(), unit)
	}
	return m
}

func histPoint(t *testing.T, m *metricpb.Metric, want map[string]string) *metricpb.HistogramDataPoint {
	t.Helper()
	return point(t, m.GetName(), m.GetHistogram().GetDataPoints(), want)
}

func sumPoint(t *testing.T, m *metricpb.Metric, want map[string]string) *metricpb.NumberDataPoint {
	t.Helper()
	return point(t, m.GetName(), m.GetSum().GetDataPoints(), want)
}

// point is the one of points whose attributes are exactly want.
func point[P interface{ GetAttributes() []*commonpb.KeyValue }](t *testing.T, name string, points []P, want map[string]string) P {
	t.Helper()
	var seen []string
	for _, p := range points {
		got := otlptest.Attrs(p.GetAttributes())
		if maps.Equal(got, want) {
			return p
		}
		seen = append(seen, sortedString(got))
	}
	t.Fatalf("%s: no point with %s; have:\n%s", name, sortedString(want), strings.Join(seen, "\n"))
	var none P
	return none
}

func sortedString(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(k + "=" + m[k] + " ")
	}
	return b.String()
}

// A receiver that is down costs failed exports, never tokenmeter's start
// nor a record: nothing is dialled before the first export, and Append
// only aggregates in memory.
func TestReceiverDownFailsOnlyTheExport(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	for _, protocol := range []string{GRPC, HTTP} {
		t.Run(protocol, func(t *testing.T) {
			s := newSink(t, protocol, "http://"+addr, time.Hour)
			start := time.Now()
			sendRecords(s)
			if d := time.Since(start); d > time.Second {
				t.Errorf("appending took %s with the receiver down", d)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			if err := s.ForceFlush(ctx); err == nil {
				t.Error("an export to a closed port reported no error")
			}
			s.Shutdown(ctx)
		})
	}
}
