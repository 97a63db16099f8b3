package ratelimit

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-ingest/sluice/limiter"
)

// observer feeds the limiter's decisions, backend errors, breaker state and
// fallback to Prometheus. Every label set is small and fixed: no tenant, no
// key.
type observer struct {
	decisions *prometheus.CounterVec
	// counters caches decisions' children by (outcome, source): every
	// request reports one decision, and the label lookup costs more than
	// the count.
	counters sync.Map // decisionLabels -> prometheus.Counter
	latency  prometheus.Histogram
	errors   *prometheus.CounterVec
	breaker  *prometheus.GaugeVec
	fallback prometheus.Gauge
}

// newObserver registers the limiter metrics on reg.
func newObserver(reg prometheus.Registerer) *observer {
	o := &observer{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_gateway_limiter_decisions_total",
			Help: "Rate limit decisions by result (allowed, denied, shadow_denied, error) and source (redis, allotment, deny_cache, fallback, local).",
		}, []string{"result", "source"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_gateway_limiter_decision_duration_seconds",
			Help:    "Time to make one rate limit decision (a healthy Redis's late answer is awaited up to 250ms after the send).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 14),
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_gateway_limiter_backend_errors_total",
			Help: "Failed Redis calls of the rate limiter (errors, and commands left unanswered) by operation.",
		}, []string{"op"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_gateway_limiter_breaker_state",
			Help: "1 for the rate limiter circuit breaker's current state (closed, open, half_open), 0 for the others.",
		}, []string{"state"}),
		fallback: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_gateway_limiter_fallback_active",
			Help: "1 while rate limit decisions are made without Redis, as SLUICE_LIMITER_ON_ERROR says.",
		}),
	}
	o.ObserveBreaker(limiter.BreakerClosed)
	reg.MustRegister(o.decisions, o.latency, o.errors, o.breaker, o.fallback)
	return o
}

type decisionLabels struct {
	outcome limiter.Outcome
	source  limiter.Source
}

func (o *observer) ObserveDecision(d limiter.Decision) {
	k := decisionLabels{d.Outcome, d.Source}
	c, ok := o.counters.Load(k)
	if !ok {
		c, _ = o.counters.LoadOrStore(k, o.decisions.WithLabelValues(string(d.Outcome), string(d.Source)))
	}
	c.(prometheus.Counter).Inc()
	o.latency.Observe(d.Latency.Seconds())
}

func (o *observer) ObserveBackendError(op string, _ error) { o.errors.WithLabelValues(op).Inc() }

func (o *observer) ObserveBreaker(s limiter.BreakerState) {
	for _, st := range [...]limiter.BreakerState{limiter.BreakerClosed, limiter.BreakerOpen, limiter.BreakerHalfOpen} {
		v := 0.0
		if st == s {
			v = 1
		}
		o.breaker.WithLabelValues(st.String()).Set(v)
	}
}

func (o *observer) ObserveFallback(active bool) {
	if active {
		o.fallback.Set(1)
	} else {
		o.fallback.Set(0)
	}
}
