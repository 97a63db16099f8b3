package api

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the gateway's request metrics.
type Metrics struct {
	requests          *prometheus.CounterVec
	accepted          prometheus.Counter // requests{code="202"}, looked up once
	eventsAccepted    prometheus.Counter
	requestSeconds    prometheus.Histogram
	publishSeconds    prometheus.Histogram
	inflightRequests  prometheus.Gauge
	inflightPublishes prometheus.Gauge
	// requestsPerMessage is how many requests each published message
	// holds (1 unless coalesced).
	requestsPerMessage prometheus.Histogram
}

// NewMetrics registers the ingest metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_gateway_requests_total", Help: "Ingest requests by HTTP status code.",
		}, []string{"code"}),
		eventsAccepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_gateway_events_accepted_total", Help: "Events in requests answered 202.",
		}),
		requestSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_gateway_request_duration_seconds", Help: "Time from request start to 202.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_gateway_publish_duration_seconds", Help: "Time from publish to JetStream acknowledgement (or failure).",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 15),
		}),
		inflightRequests: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_gateway_inflight_requests", Help: "Requests being decoded or published; bounded by SLUICE_MAX_INFLIGHT.",
		}),
		inflightPublishes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_gateway_inflight_publishes", Help: "Publishes waiting for their JetStream acknowledgement.",
		}),
		requestsPerMessage: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_gateway_requests_per_message", Help: "Requests held by each message published (1 unless coalesced, at most 64).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}),
	}
	m.accepted = m.requests.WithLabelValues("202")
	reg.MustRegister(m.requests, m.eventsAccepted, m.requestSeconds, m.publishSeconds, m.inflightRequests, m.inflightPublishes,
		m.requestsPerMessage)
	return m
}
