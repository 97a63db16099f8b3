package main

import (
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/pkg/telemetry"
	"github.com/sluice-ingest/sluice/worker/internal/partition"
	"github.com/sluice-ingest/sluice/worker/internal/pipeline"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

// worker is the wired process: the parts run builds and the actors serve.
type worker struct {
	s          settings
	log        *slog.Logger
	nc         *nats.Conn
	js         jetstream.JetStream
	streams    stream.Config
	s3c        *s3.Client
	sink       *sink.Sink
	metrics    *pipeline.Metrics
	members    *partition.Metrics
	mismatched prometheus.Gauge
	ready      *readiness
	admin      *telemetry.Admin
	ensured    chan struct{} // closed once the streams and consumers exist
}

// connect opens the NATS connection and its JetStream API.
func connect(s settings, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := stream.Connect(s.nats.URL, s.nats.Creds, "sluice-worker", log)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// wire builds the metrics, readiness and the admin server around the
// connections and the sink.
func wire(s settings, log *slog.Logger, nc *nats.Conn, js jetstream.JetStream, s3c *s3.Client, sk *sink.Sink) (*worker, error) {
	reg := telemetry.NewRegistry()
	w := &worker{
		s: s, log: log, nc: nc, js: js, streams: s.nats.Config(), s3c: s3c, sink: sk,
		metrics:    pipeline.NewMetrics(reg),
		members:    partition.NewMetrics(reg),
		mismatched: newReconcileGauge(reg),
		ready:      &readiness{nc: nc},
		ensured:    make(chan struct{}),
	}
	var err error
	if w.admin, err = telemetry.NewAdmin(s.adminAddr, reg, w.ready.check, s.pprof); err != nil {
		return nil, err
	}
	return w, nil
}
