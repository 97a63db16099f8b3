package pipeline

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the worker's pipeline metrics.
type Metrics struct {
	messages      *prometheus.CounterVec
	events        prometheus.Counter
	objects       prometheus.Counter
	objectBytes   prometheus.Histogram
	uploadSeconds prometheus.Histogram
}

// NewMetrics registers the pipeline metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_worker_messages_total", Help: "Stream messages by outcome: acked, retried, dead_lettered.",
		}, []string{"outcome"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_worker_events_written_total", Help: "Events written to stored objects.",
		}),
		objects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_worker_objects_written_total", Help: "Objects stored in S3.",
		}),
		objectBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_worker_object_bytes", Help: "Size of stored objects (compressed).",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 10),
		}),
		uploadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_worker_upload_duration_seconds", Help: "Time of one S3 upload attempt.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
	}
	for _, o := range []string{"acked", "retried", "dead_lettered"} {
		m.messages.WithLabelValues(o)
	}
	reg.MustRegister(m.messages, m.events, m.objects, m.objectBytes, m.uploadSeconds)
	return m
}
