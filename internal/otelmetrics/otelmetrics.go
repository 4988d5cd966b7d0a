// Package otelmetrics exports tokenmeter's per-request metrics over OTLP,
// with the OpenTelemetry GenAI semantic conventions, beside the Prometheus
// metrics of internal/metrics. Like them it is a ledger.Sink, fed the same
// records, and it bounds every attribute a client can influence with the
// same code (metrics.Labeler): what one exporter shows, the other does.
//
// The instruments (docs/metrics.md, "OTLP"):
//   - gen_ai.client.token.usage: a histogram of the tokens of each request,
//     one observation per gen_ai.token.type (input, output);
//   - gen_ai.client.operation.duration and, for streams,
//     gen_ai.client.operation.time_to_first_chunk;
//   - tokenmeter.tokens and tokenmeter.units: counters by tokenmeter's own
//     disjoint classes and units, which the conventions' two types fold;
//   - tokenmeter.cost: the cost charged, summed exactly in nano-units and
//     converted to float64 only when exported;
//   - tokenmeter.attribute.overflow: values exported as "other".
package otelmetrics

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/semconv/v1.41.0/genaiconv"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/metrics"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// Defaults for the zero Options fields. The interval is the SDK's own
// default; the timeout leaves room for retries within one interval.
const (
	DefaultInterval = 60 * time.Second
	DefaultTimeout  = 10 * time.Second
	// ScopeName is the instrumentation scope every instrument is in.
	ScopeName = "github.com/tokenmeter/tokenmeter"
	// HTTPPath is where an OTLP/HTTP endpoint given without a path is sent
	// (the OTLP specification's default for metrics).
	HTTPPath = "/v1/metrics"
)

// Protocols.
const (
	GRPC = "grpc"
	HTTP = "http"
)

// Options configure the exporter.
type Options struct {
	// Endpoint is the receiver's URL: http:// (plaintext) or https:// (TLS,
	// the system's roots). For HTTP, its path is where exports are posted,
	// HTTPPath when it has none.
	Endpoint string
	// Protocol is GRPC (the default when empty) or HTTP.
	Protocol string
	// Interval between exports, and Timeout of one; 0: the defaults.
	Interval, Timeout time.Duration
	// Headers are sent with every export.
	Headers map[string]string
	// Resource attributes; they win over OTEL_RESOURCE_ATTRIBUTES and
	// OTEL_SERVICE_NAME, which win over tokenmeter's defaults (service.name
	// tokenmeter, service.version Version, a random service.instance.id).
	Resource map[string]string
	Version  string
	// Currency is the reporting currency, the unit of tokenmeter.cost
	// ("{USD}"). Every cost point also names its currency (CurrencyKey):
	// they differ only after a reload changed currency.reporting.
	Currency money.Currency
	// Labels bound the attribution attributes, as they bound the
	// Prometheus labels.
	Labels metrics.Options
}

// Sink records ledger records into OpenTelemetry instruments, exported by
// its reader. Its methods are safe for concurrent use.
type Sink struct {
	provider   *sdkmetric.MeterProvider
	labels     *metrics.Labeler
	dimKeys    []attribute.Key
	usage      metric.Int64Histogram
	duration   metric.Float64Histogram
	firstChunk metric.Float64Histogram
	tokens     metric.Int64Counter
	units      metric.Int64Counter
	overflow   metric.Int64Counter
	cost       *exactCost
}

// New builds the OTLP exporter and a periodic reader over it. Nothing is
// dialled yet: a receiver that is down costs failed exports (reported to
// the OpenTelemetry error handler), never tokenmeter's start.
func New(ctx context.Context, o Options) (*Sink, error) {
	exp, err := newExporter(ctx, o)
	if err != nil {
		return nil, err
	}
	res, err := newResource(ctx, o)
	if err != nil {
		return nil, err
	}
	reader := sdkmetric.NewPeriodicReader(exp,
		sdkmetric.WithInterval(orDefault(o.Interval, DefaultInterval)),
		sdkmetric.WithTimeout(orDefault(o.Timeout, DefaultTimeout)))
	return NewWithReader(reader, res, o)
}

// NewWithReader records into instruments read by reader (New's periodic
// OTLP reader, or a test's manual one).
func NewWithReader(reader sdkmetric.Reader, res *resource.Resource, o Options) (*Sink, error) {
	s := &Sink{
		provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res)),
		cost:     newExactCost(),
	}
	if err := s.instruments(o); err != nil {
		return nil, err
	}
	s.labels = metrics.NewLabeler(o.Labels, func(label string) {
		s.overflow.Add(context.Background(), 1, metric.WithAttributes(OverflowKey.String(label)))
	})
	for _, n := range s.labels.Names() {
		s.dimKeys = append(s.dimKeys, attribute.Key(DimensionPrefix+n))
	}
	return s, nil
}

func (s *Sink) instruments(o Options) error {
	m := s.provider.Meter(ScopeName, metric.WithInstrumentationVersion(o.Version), metric.WithSchemaURL(semconv.SchemaURL))
	usage, err := genaiconv.NewClientTokenUsage(m, metric.WithExplicitBucketBoundaries(tokenBuckets...))
	if err != nil {
		return fmt.Errorf("otlp: %s: %w", usage.Name(), err)
	}
	duration, err := genaiconv.NewClientOperationDuration(m, metric.WithExplicitBucketBoundaries(durationBuckets...))
	if err != nil {
		return fmt.Errorf("otlp: %s: %w", duration.Name(), err)
	}
	first, err := genaiconv.NewClientOperationTimeToFirstChunk(m, metric.WithExplicitBucketBoundaries(durationBuckets...))
	if err != nil {
		return fmt.Errorf("otlp: %s: %w", first.Name(), err)
	}
	s.usage, s.duration, s.firstChunk = usage.Inst(), duration.Inst(), first.Inst()
	if s.tokens, err = m.Int64Counter("tokenmeter.tokens", metric.WithUnit("{token}"),
		metric.WithDescription("Billed tokens by tokenmeter's disjoint class (input is uncached input; output excludes reasoning).")); err != nil {
		return fmt.Errorf("otlp: tokenmeter.tokens: %w", err)
	}
	if s.units, err = m.Int64Counter("tokenmeter.units", metric.WithUnit("1"),
		metric.WithDescription("Billed units that are not tokens: images, audio_ms (audio milliseconds), characters.")); err != nil {
		return fmt.Errorf("otlp: tokenmeter.units: %w", err)
	}
	if s.overflow, err = m.Int64Counter("tokenmeter.attribute.overflow", metric.WithUnit("{value}"),
		metric.WithDescription(`Attribute values exported as "other" because their attribute reached its cap of distinct values; one per record and attribute folded.`)); err != nil {
		return fmt.Errorf("otlp: tokenmeter.attribute.overflow: %w", err)
	}
	unit := "{" + string(o.Currency) + "}"
	if o.Currency == "" {
		unit = "{currency}"
	}
	if _, err = m.Float64ObservableCounter("tokenmeter.cost", metric.WithUnit(unit),
		metric.WithDescription("Cost charged, in currency units. Summed exactly in nano-units; converted to float only for export."),
		metric.WithFloat64Callback(s.cost.observe)); err != nil {
		return fmt.Errorf("otlp: tokenmeter.cost: %w", err)
	}
	return nil
}

// Append implements ledger.Sink. It never blocks on the network: the
// instruments aggregate in memory and the reader exports on its own.
func (s *Sink) Append(r *ledger.Record) {
	ctx := context.Background()
	model := metrics.ModelLabel(r)
	base := []attribute.KeyValue{
		semconv.GenAIOperationNameKey.String(operationName(r.Dialect)),
		semconv.GenAIRequestModelKey.String(model),
	}
	if r.Provider != "" {
		base = append(base, semconv.GenAIProviderNameKey.String(providerName(r.Provider)))
	}
	if rm := s.labels.ResponseModel(r); rm != "" {
		base = append(base, semconv.GenAIResponseModelKey.String(rm))
	}
	op := with(base, OutcomeKey.String(string(r.Outcome)))
	if et := errorType(r.Outcome); et != "" {
		op = append(op, semconv.ErrorTypeKey.String(et))
	}
	s.duration.Record(ctx, r.Duration.Seconds(), metric.WithAttributes(op...))
	if r.Stream && r.TTFT > 0 {
		s.firstChunk.Record(ctx, r.TTFT.Seconds(), metric.WithAttributes(base...))
	}
	if !metrics.Spends(r) {
		return // its attribution takes no slot under the caps (metrics.Spends)
	}
	for i, v := range s.labels.Dims(make([]string, 0, len(s.dimKeys)), r, r.Provider, model) {
		base = append(base, s.dimKeys[i].String(v))
	}
	s.recordUsage(ctx, &r.Usage, base)
	if cur, cost, ok := metrics.ChargedCost(r); ok {
		s.cost.add(attribute.NewSet(with(base, CurrencyKey.String(string(cur)))...), cost)
	}
}

// recordUsage records the token histogram (one observation per token type
// the request used) and the class and unit counters.
func (s *Sink) recordUsage(ctx context.Context, u *usage.Usage, base []attribute.KeyValue) {
	var in, out int64
	for c := usage.Class(0); c < usage.NumClasses; c++ {
		n := u.Tokens[c].N
		if n <= 0 {
			continue
		}
		if isOutput(c) {
			out += n
		} else {
			in += n
		}
		s.tokens.Add(ctx, n, metric.WithAttributes(with(base, ClassKey.String(c.String()))...))
	}
	if in > 0 {
		s.usage.Record(ctx, in, metric.WithAttributes(with(base, semconv.GenAITokenTypeInput)...))
	}
	if out > 0 {
		s.usage.Record(ctx, out, metric.WithAttributes(with(base, semconv.GenAITokenTypeOutput)...))
	}
	for k := usage.Unit(0); k < usage.NumUnits; k++ {
		if n := u.Units[k].N; n > 0 {
			s.units.Add(ctx, n, metric.WithAttributes(with(base, UnitKey.String(k.String()))...))
		}
	}
}

// with returns a new slice: base followed by more. The SDK sorts the
// attributes it is given in place, so no two calls share a backing array.
func with(base []attribute.KeyValue, more ...attribute.KeyValue) []attribute.KeyValue {
	return slices.Concat(base, more)
}

// ForceFlush exports what has been recorded now.
func (s *Sink) ForceFlush(ctx context.Context) error { return s.provider.ForceFlush(ctx) }

// Shutdown exports what has been recorded and stops the reader; records
// appended later are dropped. Call it after the servers that append have
// stopped.
func (s *Sink) Shutdown(ctx context.Context) error { return s.provider.Shutdown(ctx) }

func newExporter(ctx context.Context, o Options) (sdkmetric.Exporter, error) {
	u, err := url.Parse(o.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("otlp endpoint %q: want http://host:port or https://host:port", o.Endpoint)
	}
	timeout := orDefault(o.Timeout, DefaultTimeout)
	switch o.Protocol {
	case GRPC, "":
		opts := []otlpmetricgrpc.Option{otlpmetricgrpc.WithEndpoint(u.Host), otlpmetricgrpc.WithTimeout(timeout)}
		if u.Scheme == "http" {
			opts = append(opts, otlpmetricgrpc.WithInsecure())
		}
		if len(o.Headers) > 0 {
			opts = append(opts, otlpmetricgrpc.WithHeaders(o.Headers))
		}
		exp, err := otlpmetricgrpc.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("otlp grpc exporter: %w", err)
		}
		return exp, nil
	case HTTP:
		path := u.Path
		if path == "" || path == "/" {
			path = HTTPPath
		}
		opts := []otlpmetrichttp.Option{otlpmetrichttp.WithEndpoint(u.Host), otlpmetrichttp.WithURLPath(path),
			otlpmetrichttp.WithTimeout(timeout)}
		if u.Scheme == "http" {
			opts = append(opts, otlpmetrichttp.WithInsecure())
		}
		if len(o.Headers) > 0 {
			opts = append(opts, otlpmetrichttp.WithHeaders(o.Headers))
		}
		exp, err := otlpmetrichttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("otlp http exporter: %w", err)
		}
		return exp, nil
	}
	return nil, fmt.Errorf("otlp protocol %q: want %s or %s", o.Protocol, GRPC, HTTP)
}

// newResource describes this process. Replicas export the same series, so
// each gets its own service.instance.id: without one, a backend would take
// several replicas' cumulative counters for one and see them jump.
func newResource(ctx context.Context, o Options) (*resource.Resource, error) {
	defaults := []attribute.KeyValue{semconv.ServiceName("tokenmeter"), semconv.ServiceInstanceID(uuid.NewString())}
	if o.Version != "" {
		defaults = append(defaults, semconv.ServiceVersion(o.Version))
	}
	var given []attribute.KeyValue
	for _, k := range slices.Sorted(maps.Keys(o.Resource)) {
		given = append(given, attribute.String(k, o.Resource[k]))
	}
	// Later options win: the defaults, then the environment, then the
	// config file.
	res, err := resource.New(ctx, resource.WithAttributes(defaults...), resource.WithFromEnv(), resource.WithAttributes(given...))
	if err != nil {
		return nil, fmt.Errorf("otlp resource: %w", err)
	}
	return res, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
