package ingress

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the ingress's Prometheus metrics, registered on the registry
// given to New.
type metrics struct {
	requests  *prometheus.CounterVec   // source, route, code
	latency   *prometheus.HistogramVec // route
	delivered *prometheus.CounterVec   // source, outcome
}

// Label values for requests that are not (yet) attributed.
const (
	labelNoSource     = "none"
	labelUnknownRoute = "unknown"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authflow_ingress_requests_total",
			Help: "HTTP requests to the ingress by authenticated source (none when unauthenticated), route and status code.",
		}, []string{"source", "route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "authflow_ingress_request_duration_seconds",
			Help:    "Time from a request's arrival to its answer, by route; includes the JetStream acknowledgement and any Prefer: wait.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authflow_ingress_results_webhook_total",
			Help: "Results webhook deliveries by source and outcome (delivered, dead_lettered).",
		}, []string{"source", "outcome"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.latency, m.delivered} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) observe(source, route string, status int, d time.Duration) {
	if source == "" {
		source = labelNoSource
	}
	m.requests.WithLabelValues(source, route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}
