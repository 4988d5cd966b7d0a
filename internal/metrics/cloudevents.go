package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenmeter/tokenmeter/internal/cloudevents"
)

// WatchCloudEvents exports the CloudEvents sender's counters
// (ledger.cloudevents).
func (m *Metrics) WatchCloudEvents(stats func() cloudevents.Stats) {
	m.reg.MustRegister(cloudEventsCollector(stats))
}

var (
	cloudEventsDesc = prometheus.NewDesc("tokenmeter_cloudevents_events_total",
		"Records sent as CloudEvents, by what became of them: sent (the receiver answered 2xx), failed (given up after max_attempts or a final status; logged), dropped (the queue was full, or still queued when the shutdown's drain ended; logged).",
		[]string{"result"}, nil)
	cloudEventsRetries = prometheus.NewDesc("tokenmeter_cloudevents_retries_total",
		"Requests to the CloudEvents endpoint repeated after a network error, 429 or 5xx.", nil, nil)
	cloudEventsQueued = prometheus.NewDesc("tokenmeter_cloudevents_queue_length", "Records waiting to be sent as CloudEvents, the batch being collected or sent included.", nil, nil)
)

type cloudEventsCollector func() cloudevents.Stats

func (c cloudEventsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cloudEventsDesc
	ch <- cloudEventsRetries
	ch <- cloudEventsQueued
}

func (c cloudEventsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c()
	for _, r := range []struct {
		name string
		v    uint64
	}{{"sent", s.Sent}, {"failed", s.Failed}, {"dropped", s.Dropped}} {
		ch <- prometheus.MustNewConstMetric(cloudEventsDesc, prometheus.CounterValue, float64(r.v), r.name)
	}
	ch <- prometheus.MustNewConstMetric(cloudEventsRetries, prometheus.CounterValue, float64(s.Retries))
	ch <- prometheus.MustNewConstMetric(cloudEventsQueued, prometheus.GaugeValue, float64(s.Queued))
}
