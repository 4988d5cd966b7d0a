package daemon

import (
	"fmt"
	"log/slog"
	"net/url"

	"github.com/tokenmeter/tokenmeter/internal/cloudevents"
	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/internal/metrics"
)

// cloudEventsSink starts the CloudEvents sender when ledger.cloudevents is
// set (nil otherwise); stop drains it, within its DrainTimeout, once
// nothing appends any more.
func cloudEventsSink(cfg *config.Config, m *metrics.Metrics, log *slog.Logger) (*cloudevents.Sender, func(), error) {
	c := cfg.Ledger.CloudEvents
	if c == nil {
		return nil, func() {}, nil
	}
	s, err := cloudevents.New(cloudevents.Options{
		URL: c.URL, Headers: c.Headers,
		Meta:      cloudevents.Meta{Source: c.Source, Type: c.Type, Subject: c.Subject},
		QueueSize: int(c.QueueSize), BatchSize: int(c.BatchSize), MaxAttempts: int(c.MaxAttempts),
		FlushInterval: c.FlushInterval, Timeout: c.Timeout, Logger: log,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("ledger.cloudevents: %w", err)
	}
	m.WatchCloudEvents(s.Stats)
	host := "?"
	if u, err := url.Parse(c.URL); err == nil {
		host = u.Scheme + "://" + u.Host // the rest may be a secret (url_env)
	}
	log.Info("sending records as CloudEvents", "host", host, "source", c.Source, "type", c.Type, "subject", c.Subject,
		"batch_size", c.BatchSize)
	return s, func() {
		if err := s.Close(); err != nil {
			log.Error("cloudevents: close", "err", err)
		}
		st := s.Stats()
		log.Info("cloudevents sender stopped", "sent", st.Sent, "failed", st.Failed, "dropped", st.Dropped, "retries", st.Retries)
	}, nil
}
