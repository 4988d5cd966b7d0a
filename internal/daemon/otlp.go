package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/metrics"
	"github.com/tokenmeter/tokenmeter/internal/otelmetrics"
)

// otlpFlushTimeout bounds the last export at shutdown: a receiver that is
// down must not hold the process past Kubernetes' grace period.
const otlpFlushTimeout = 5 * time.Second

// recordSinks are where every record goes: the Prometheus metrics, the
// debug log and, when set, the CloudEvents sender (ledger.cloudevents) and
// the OTLP exporter (metrics.otlp). stop drains the sender and flushes the
// exporter, side by side so that their bounds do not add up; call it once
// the servers that append have stopped.
func recordSinks(ctx context.Context, cfg *config.Config, m *metrics.Metrics, log *slog.Logger) (sinks ledger.Sinks, stop func(), err error) {
	sinks = ledger.Sinks{m, logSink{log}}
	ce, stopCE, err := cloudEventsSink(cfg, m, log)
	if err != nil {
		return nil, nil, err
	}
	if ce != nil {
		sinks = append(sinks, ce)
	}
	o := cfg.Metrics.OTLP
	if o.Endpoint == "" {
		return sinks, stopCE, nil
	}
	// The SDK reports failed exports here; without it they would go to the
	// standard logger, outside the JSON log.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("otlp export", "err", err) }))
	exp, err := otelmetrics.New(ctx, otelmetrics.Options{
		Endpoint: o.Endpoint, Protocol: o.Protocol, Interval: o.Interval, Timeout: o.Timeout,
		Headers: o.Headers, Resource: o.ResourceAttributes, Version: buildVersion(),
		Currency: cfg.Reporting, Labels: metricsOptions(cfg.Metrics),
	})
	if err != nil {
		stopCE()
		return nil, nil, fmt.Errorf("metrics.otlp: %w", err)
	}
	log.Info("exporting metrics over OTLP", "endpoint", o.Endpoint, "protocol", o.Protocol)
	stop = func() {
		var wg sync.WaitGroup
		wg.Go(stopCE)
		ctx, cancel := context.WithTimeout(context.Background(), otlpFlushTimeout)
		defer cancel()
		if err := exp.Shutdown(ctx); err != nil {
			log.Error("otlp: last export", "err", err)
		}
		wg.Wait()
	}
	return append(sinks, exp), stop, nil
}

// buildVersion is the module version Go stamped into the binary (from
// version control), for service.version.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return ""
}
