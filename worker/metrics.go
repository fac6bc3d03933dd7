package worker

import (
	"cmp"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/authflow/authflow/events"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the worker's Prometheus metrics, registered on the registry
// given to NewMetrics (no global registry). Labels are low-cardinality
// only: event types, outcomes, Graph operations and status codes — never a
// user, an event id or a phone number.
type Metrics struct {
	events        *prometheus.CounterVec   // type, outcome: one per event, final outcomes only
	deliveries    *prometheus.CounterVec   // outcome: deliveries that did not end an event
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
	orderWaits    prometheus.Counter
	// reg is where the metrics of the worker's parts (rate limits) go too.
	reg prometheus.Registerer
	// graphLimit reads the Graph throttle's concurrency limit, once the
	// worker knows its client (SetGraphLimit).
	graphLimit atomic.Pointer[func() int]
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := newMetrics(reg)
	m.reg = reg
	// Export every series at zero so that dashboards and alerts (rates,
	// increases) see the first occurrence after a start.
	for _, reason := range []string{"graph", "redelivery"} {
		m.retries.WithLabelValues(reason)
	}
	for _, typ := range append(events.Types(), "invalid") {
		for _, o := range []string{outcomeSucceeded, outcomeFailed, outcomeRejected} {
			m.events.WithLabelValues(typ, o)
		}
	}
	for _, o := range []string{outcomeDuplicate, outcomeRetry, outcomeBusy, outcomeAbandoned, outcomeScheduled, outcomeParked} {
		m.deliveries.WithLabelValues(o)
	}
	for _, c := range events.Codes() {
		if c.Status() == events.StatusRejected || deadLettered(c) {
			m.dlq.WithLabelValues(string(c))
		}
	}
	promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "authflow_graph_concurrency_limit",
		Help: "The adaptive limit on Graph requests in flight: halved on 429/503, grown back on success (0 until known).",
	}, func() float64 {
		if f := m.graphLimit.Load(); f != nil {
			return float64((*f)())
		}
		return 0
	})
	version, revision, goVersion := BuildInfo()
	promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{
		Name: "authflow_build_info",
		Help: "Always 1; the labels say which build runs.",
	}, []string{"version", "revision", "goversion"}).WithLabelValues(version, revision, goVersion).Set(1)
	return m
}

// SetGraphLimit makes authflow_graph_concurrency_limit read limit.
func (m *Metrics) SetGraphLimit(limit func() int) { m.graphLimit.Store(&limit) }

// Version is the release version, set at build time with
// -ldflags "-X github.com/authflow/authflow/worker.Version=v1.2.3".
var Version = ""

// BuildInfo returns the version (Version, else the module version, else
// "devel"), the VCS revision and the Go version of this binary.
func BuildInfo() (version, revision, goVersion string) {
	version, revision, goVersion = Version, "unknown", runtime.Version()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return cmp.Or(version, "devel"), revision, goVersion
	}
	if version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			revision = s.Value
		}
	}
	return cmp.Or(version, "devel"), revision, goVersion
}

func newMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		events: f.NewCounterVec(prometheus.CounterOpts{
			Name: "authflow_events_total",
			Help: "Events ended, by type and outcome (succeeded, failed, rejected): one per event; type \"invalid\" for undecodable messages.",
		}, []string{"type", "outcome"}),
		orderWaits: f.NewCounter(prometheus.CounterOpts{
			Name: "authflow_order_waits_total",
			Help: "Times an event waited for an earlier, unfinished event of its key (several events of a partition in flight).",
		}),
		deliveries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "authflow_deliveries_total",
			Help: "Deliveries that did not end an event, by outcome: duplicate (result republished), retry (handed back with a delay), busy (another attempt holds the event), abandoned (stopped without ack), scheduled (a future-dated event accepted and scheduled).",
		}, []string{"outcome"}),
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
