package pipeline

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the worker's pipeline metrics.
type Metrics struct {
	messages      *prometheus.CounterVec
	events        prometheus.Counter
	objects       prometheus.Counter
	objectBytes   prometheus.Histogram
	uploadSeconds prometheus.Histogram
	uploadRetries prometheus.Counter
	cuts          *prometheus.CounterVec
	openAge       prometheus.Gauge
	inflightBytes prometheus.Gauge
	pending       prometheus.Gauge
	// dead letters and the DLQ (deadletter.go)
	deadLettersRefused prometheus.Counter
	dlqMessages        prometheus.Gauge
	dlqBytes           prometheus.Gauge
	// whether this worker can write to its bucket (writable.go)
	s3Writable prometheus.Gauge
	// consumers found stalled (stall.go)
	stalls prometheus.Counter
	// hand-backs recorded, not counted towards MaxDeliver (handback.go)
	handBacksRecorded prometheus.Counter
}

// NewMetrics registers the pipeline metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_worker_messages_total", Help: "Stream messages by outcome: acked, retried (Nak'ed for redelivery), dead_lettered.",
		}, []string{"outcome"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_worker_events_written_total", Help: "Events written to stored objects.",
		}),
		objects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_worker_objects_written_total", Help: "Objects stored in S3 (including objects found already stored).",
		}),
		objectBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_worker_object_bytes", Help: "Size of stored objects (compressed).",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 10),
		}),
		uploadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_worker_upload_duration_seconds", Help: "Time of one S3 upload attempt.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		uploadRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_worker_upload_retries_total", Help: "Failed upload attempts that will be retried.",
		}),
		cuts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_worker_batches_cut_total", Help: "Objects cut for upload, by reason: bytes, events, age, pressure, shutdown, regather, handover.",
		}, []string{"reason"}),
		openAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_worker_batch_age_seconds", Help: "Age of the oldest open object (0 when none is open).",
		}),
		inflightBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_worker_inflight_bytes", Help: "Bytes held in open objects and uploads; bounded by SLUICE_MAX_INFLIGHT_BYTES.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_worker_consumer_pending", Help: "Consumer lag: messages not yet delivered plus delivered and not acknowledged, from consumer info.",
		}),
	}
	m.deadLettersRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_worker_dead_letters_refused_total", Help: "Dead-letter publishes that failed (SLUICE_DLQ full or unreachable); the message stays in the events stream and is tried again.",
	})
	m.dlqMessages = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_worker_dlq_messages", Help: "Messages in the dead-letter stream, from stream info.",
	})
	m.dlqBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_worker_dlq_bytes", Help: "Bytes in the dead-letter stream, from stream info; refused at SLUICE_DLQ_MAX_BYTES.",
	})
	m.s3Writable = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_worker_s3_writable", Help: "1 while this worker can write to its bucket; 0 while S3 refuses it (credentials, permissions, bucket, region): it then fetches nothing and is not ready.",
	})
	m.stalls = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_worker_partition_stalls_total", Help: "Consumers read by this worker that had messages for it but delivered none for twice SLUICE_ACK_WAIT while it fetched; each was unpinned and fetched afresh.",
	})
	m.handBacksRecorded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_worker_handbacks_recorded_total", Help: "Messages handed back because this worker could not write, recorded in SLUICE_HANDBACKS so the delivery does not count towards SLUICE_MAX_DELIVER.",
	})
	reg.MustRegister(m.deadLettersRefused, m.dlqMessages, m.dlqBytes, m.s3Writable, m.handBacksRecorded, m.stalls)
	for _, o := range []string{"acked", "retried", "dead_lettered"} {
		m.messages.WithLabelValues(o)
	}
	for _, r := range []string{"bytes", "events", "age", "pressure", "shutdown", "regather", "handover"} {
		m.cuts.WithLabelValues(r)
	}
	reg.MustRegister(m.messages, m.events, m.objects, m.objectBytes, m.uploadSeconds, m.uploadRetries,
		m.cuts, m.openAge, m.inflightBytes, m.pending)
	return m
}
