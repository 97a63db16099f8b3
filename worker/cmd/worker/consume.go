package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/manifest"
	"github.com/sluice-ingest/sluice/worker/internal/partition"
	"github.com/sluice-ingest/sluice/worker/internal/pipeline"
)

// consume ensures what the pipeline needs, joins the workers and runs the
// pipeline until ctx ends (see runPipeline). Each step retries while NATS is
// unreachable; when ctx ends first it returns nil.
func (w *worker) consume(ctx context.Context) error {
	slots, err := ensureConsumers(ctx, w.js, w.streams, w.s, w.log)
	if err != nil {
		return nil // ctx ended first
	}
	close(w.ensured)
	tracker, err := ensureTracker(ctx, w.js, w.streams.EventsConfig().Name, w.s, w.s3c, w.log)
	if err != nil {
		return nil // ctx ended first
	}
	rec, err := ensureAccounting(ctx, w.js, w.s.nats, w.log)
	if err != nil {
		return nil // ctx ended first
	}
	var handBacks *pipeline.HandBacks
	err = stream.Retry(ctx, w.log, "ensure the hand-backs bucket", func(ctx context.Context) error {
		handBacks, err = pipeline.EnsureHandBacks(ctx, w.js, w.s.nats.Replicas)
		return err
	})
	if err != nil {
		return nil // ctx ended first
	}
	p := w.newPipeline(tracker, rec, handBacks)
	member, err := w.join(ctx, slots, p)
	if err != nil {
		return nil // ctx ended first
	}
	w.ready.consuming.Store(p)
	w.log.Info("worker consuming", "stream", w.streams.EventsConfig().Name, "partitions", w.streams.PartitionCount(),
		"member", member.ID(), "bucket", w.s.s3Bucket, "admin", w.admin.Addr())
	return w.runPipeline(ctx, p, member, tracker)
}

func (w *worker) newPipeline(tracker *manifest.Tracker, rec pipeline.Recorder, handBacks *pipeline.HandBacks) *pipeline.Pipeline {
	return pipeline.New(pipeline.Config{
		Stream:           w.streams.EventsConfig().Name,
		JS:               w.js,
		Sink:             w.sink,
		Limits:           w.s.limits,
		Workers:          w.s.workers,
		MaxInflightBytes: w.s.maxInflightBytes,
		MaxMessageBytes:  int(w.nc.MaxPayload()),
		MaxDeliver:       w.s.maxDeliver,
		HandBacks:        handBacks,
		DeadLetterRetry:  w.s.ackWait,
		KeepAlive:        w.s.ackWait / 3,
		ShutdownTimeout:  w.s.shutdownTimeout,
		Hours:            tracker,
		Metrics:          w.metrics,
		Log:              w.log,
		Record:           rec,
	})
}

// join enters the workers' membership, which shares the slots out and
// hands p the ones this worker owns.
func (w *worker) join(ctx context.Context, slots []jetstream.Consumer, p *pipeline.Pipeline) (*partition.Member, error) {
	var member *partition.Member
	err := stream.Retry(ctx, w.log, "join the workers", func(ctx context.Context) error {
		var err error
		member, err = partition.Join(ctx, partition.Config{
			JS: w.js, Stream: w.streams.EventsConfig().Name, Slots: slots, TTL: w.s.ackWait, Replicas: w.streams.Replicas,
			Writable: p, Metrics: w.members, Log: w.log,
		}, p)
		return err
	})
	return member, err
}

// ensureConsumers creates the streams and one consumer per partition,
// retrying while NATS is unreachable. It returns the slots the workers
// share out: partition 0 to N-1, then (while messages stored before
// partitions existed are left) the unpartitioned consumer. It returns an
// error only when ctx ended first.
func ensureConsumers(ctx context.Context, js jetstream.JetStream, cfg stream.Config, s settings, log *slog.Logger) ([]jetstream.Consumer, error) {
	// Held messages are kept alive with InProgress (see pipeline.Pipeline),
	// so AckWait need not cover an object's age and upload time: it only says
	// how soon a dead worker's messages go to another one.
	var slots []jetstream.Consumer
	err := stream.Retry(ctx, log, "ensure stream and consumers", func(ctx context.Context) error {
		if err := stream.EnsureStreams(ctx, js, cfg); err != nil {
			return err
		}
		cons, err := stream.EnsureConsumers(ctx, js, cfg.EventsConfig().Name, cfg.PartitionCount(), stream.ConsumerConfig{
			Name:          s.consumer,
			AckWait:       s.ackWait,
			MaxAckPending: s.maxAckPending,
		})
		if err != nil {
			return err
		}
		slots = cons
		return nil
	})
	return slots, err
}

// ensureTracker creates the open hours' bucket and returns the manifest
// tracker, retrying while NATS is unreachable. It returns an error only
// when ctx ended first.
func ensureTracker(ctx context.Context, js jetstream.JetStream, events string, s settings, s3c *s3.Client, log *slog.Logger) (*manifest.Tracker, error) {
	var (
		hours *manifest.Hours
		st    jetstream.Stream
	)
	err := stream.Retry(ctx, log, "ensure the hours bucket", func(ctx context.Context) error {
		var err error
		if hours, err = manifest.OpenHours(ctx, js, s.manifestGrace, s.nats.Replicas); err != nil {
			return err
		}
		if st, err = js.Stream(ctx, events); err != nil {
			return fmt.Errorf("stream %s: %w", events, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return manifest.NewTracker(manifest.TrackerConfig{
		Writer: &manifest.Writer{S3: s3c, Bucket: s.s3Bucket, Prefix: s.s3Prefix},
		Stream: st, Hours: hours, Grace: s.manifestGrace, Log: log,
	}), nil
}
