package worker

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the worker's Prometheus metrics, registered on the registry
// given to NewMetrics (no global registry). Labels are low-cardinality
// only: event types, outcomes, Graph operations and status codes — never a
// user, an event id or a phone number.
type Metrics struct {
	events        *prometheus.CounterVec   // type, outcome
	duration      *prometheus.HistogramVec // type
	graphRequests *prometheus.CounterVec   // op, status
	graphDuration *prometheus.HistogramVec // op
	throttled     prometheus.Counter
	retries       *prometheus.CounterVec // reason
	inFlight      prometheus.Gauge
	pending       prometheus.Gauge
	ackPending    prometheus.Gauge
	dlq           *prometheus.CounterVec // reason
	lastProcessed prometheus.Gauge
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := newMetrics(reg)
	// Export the retry series at zero so dashboards and alerts see them
	// before the first retry.
	for _, reason := range []string{"graph", "redelivery"} {
		m.retries.WithLabelValues(reason)
	}
	return m
}

func newMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		events: f.NewCounterVec(prometheus.CounterOpts{
			Name: "authflow_events_total",
			Help: "Events handled, by type and outcome (succeeded, failed, rejected, duplicate, retry, dead_lettered).",
		}, []string{"type", "outcome"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "authflow_event_duration_seconds",
			Help:    "Time from receiving an event to acking it, per attempt.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"type"}),
		graphRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "authflow_graph_requests_total",
			Help: "Graph HTTP requests by operation and status code (0 = transport error).",
		}, []string{"op", "status"}),
		graphDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "authflow_graph_request_duration_seconds",
			Help:    "Graph HTTP request duration by operation.",
			Buckets: prometheus.DefBuckets,
		}, []string{"op"}),
		throttled: f.NewCounter(prometheus.CounterOpts{
			Name: "authflow_graph_throttled_total",
			Help: "Graph responses with status 429.",
		}),
		retries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "authflow_retries_total",
			Help: "Retries: graph (in-process, one Graph operation) and redelivery (event handed back to JetStream).",
		}, []string{"reason"}),
		inFlight: f.NewGauge(prometheus.GaugeOpts{
			Name: "authflow_events_in_flight",
			Help: "Events being processed now.",
		}),
		pending: f.NewGauge(prometheus.GaugeOpts{
			Name: "authflow_consumer_pending",
			Help: "Events in the stream not yet delivered, summed over partitions.",
		}),
		ackPending: f.NewGauge(prometheus.GaugeOpts{
			Name: "authflow_consumer_ack_pending",
			Help: "Events delivered and not yet acked, summed over partitions.",
		}),
		dlq: f.NewCounterVec(prometheus.CounterOpts{
			Name: "authflow_dlq_total",
			Help: "Dead letters published, by reason code.",
		}, []string{"reason"}),
		lastProcessed: f.NewGauge(prometheus.GaugeOpts{
			Name: "authflow_last_processed_timestamp_seconds",
			Help: "Unix time of the last event acked.",
		}),
	}
}

// ObserveGraph records one Graph HTTP attempt; status 0 is a transport error.
// It fits graphclient.Config.Observe.
func (m *Metrics) ObserveGraph(op string, status int, d time.Duration) {
	m.graphRequests.WithLabelValues(op, strconv.Itoa(status)).Inc()
	m.graphDuration.WithLabelValues(op).Observe(d.Seconds())
	if status == 429 {
		m.throttled.Inc()
	}
}
