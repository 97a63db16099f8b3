// Command worker drains the Sluice stream into S3: it pulls from the durable
// consumer, batches events per tenant and hour, uploads compressed objects
// and acknowledges messages only after their object is stored.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go/jetstream"
	rungroup "github.com/oklog/run"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-ingest/sluice/pkg/config"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/pkg/telemetry"
	"github.com/sluice-ingest/sluice/worker/internal/batch"
	"github.com/sluice-ingest/sluice/worker/internal/manifest"
	"github.com/sluice-ingest/sluice/worker/internal/partition"
	"github.com/sluice-ingest/sluice/worker/internal/pipeline"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

type settings struct {
	nats                           stream.Settings
	log                            telemetry.LogSettings
	adminAddr                      string
	consumer                       string
	workers                        int
	s3Bucket, s3Prefix, s3Endpoint string
	s3PathStyle                    bool
	limits                         batch.Limits
	format, compression            string
	maxInflightBytes               int64
	partSize                       int64
	ackWait                        time.Duration
	maxDeliver                     int
	maxAckPending                  int
	shutdownTimeout                time.Duration
	manifestGrace                  time.Duration
	pprof                          bool
}

func parseSettings(args []string, getenv func(string) string, stdout io.Writer) (settings, error) {
	var s settings
	cs := config.New("worker", getenv)
	s.nats.Declare(cs)
	s.log.Declare(cs)
	cs.String(&s.adminAddr, "SLUICE_ADMIN_ADDR", ":9091", "admin listen address: /healthz, /readyz, /metrics")
	cs.String(&s.consumer, "SLUICE_CONSUMER", stream.Consumer, "durable pull consumer of the messages stored without a partition; partition p's is <this>-pNN")
	cs.Int(&s.workers, "SLUICE_WORKERS", 4, 1, "concurrent uploads")
	cs.String(&s.s3Bucket, "SLUICE_S3_BUCKET", "", "S3 bucket the objects land in (required)")
	cs.String(&s.s3Prefix, "SLUICE_S3_PREFIX", "", "key prefix before tenant=<tenant>/")
	cs.String(&s.s3Endpoint, "SLUICE_S3_ENDPOINT", "", "S3 endpoint URL for S3-compatible servers (empty: AWS)")
	cs.Bool(&s.s3PathStyle, "SLUICE_S3_PATH_STYLE", false, "path-style addressing (most S3-compatible servers)")
	cs.Bytes(&s.limits.MaxBytes, "SLUICE_BATCH_MAX_BYTES", "64MiB", 1, "flush a batch at this many uncompressed bytes")
	cs.Int(&s.limits.MaxEvents, "SLUICE_BATCH_MAX_EVENTS", 500000, 1, "flush a batch at this many events")
	cs.Duration(&s.limits.MaxAge, "SLUICE_BATCH_MAX_AGE", time.Minute, 10*time.Millisecond, "flush a batch this long after it opened")
	cs.Enum(&s.format, "SLUICE_FORMAT", sink.FormatNDJSON, []string{sink.FormatNDJSON, sink.FormatParquet}, "object format: NDJSON lines, or Parquet columns id, tenant, received_at, data")
	cs.Func("SLUICE_COMPRESSION", "", "compression (gzip, zstd, none): of the whole object for ndjson, of the pages inside the file for parquet; empty: gzip for ndjson, zstd for parquet", func(v string) error {
		if !slices.Contains([]string{"", "gzip", "zstd", "none"}, v) {
			return errors.New("want gzip, zstd or none")
		}
		s.compression = v
		return nil
	})
	cs.Bytes(&s.maxInflightBytes, "SLUICE_MAX_INFLIGHT_BYTES", "256MiB", 1, "bytes held in open batches and uploads; at the bound the worker stops fetching")
	cs.Bytes(&s.partSize, "SLUICE_MULTIPART_THRESHOLD", "16MiB", 5<<20, "objects above this size are uploaded in parts of this size")
	cs.Duration(&s.ackWait, "SLUICE_ACK_WAIT", 30*time.Second, 3*time.Second, "consumer AckWait: how soon a dead worker's messages are redelivered (held messages are kept alive with InProgress every third of it)")
	cs.Int(&s.maxDeliver, "SLUICE_MAX_DELIVER", 20, 2, "deliveries of one message, counted by the worker; the last one sends it to SLUICE_DLQ")
	cs.Int(&s.maxAckPending, "SLUICE_MAX_ACK_PENDING", 1000000, 1, "MaxAckPending of each partition's consumer: messages held in batches and uploads")
	cs.Duration(&s.shutdownTimeout, "SLUICE_SHUTDOWN_TIMEOUT", 30*time.Second, 0, "longest final flush on SIGTERM")
	cs.Duration(&s.manifestGrace, "SLUICE_MANIFEST_GRACE", 10*time.Minute, time.Second, "how long after its end a tenant-hour may still get messages; then its _manifest.json is written")
	cs.Bool(&s.pprof, "SLUICE_PPROF", false, "serve /debug/pprof/ on the admin port")
	if err := cs.Parse(args, stdout); err != nil {
		return s, err
	}
	if s.s3Bucket == "" {
		return s, errors.New("SLUICE_S3_BUCKET is required")
	}
	return s, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s, err := parseSettings(args, getenv, stdout)
	if err != nil {
		return err
	}
	log, err := s.log.Logger(stderr, "worker")
	if err != nil {
		return err
	}
	if getenv("GOMEMLIMIT") == "" {
		// Held bytes are bounded by SLUICE_MAX_INFLIGHT_BYTES; this keeps
		// the garbage collector's headroom to half of that (plus the
		// process's base), instead of doubling the heap.
		limit := s.maxInflightBytes + s.maxInflightBytes/2 + 64<<20
		debug.SetMemoryLimit(limit)
		log.Debug("memory limit set", "bytes", limit)
	}

	// An S3 request whose body was sent but which never answers would hold
	// an upload slot and its messages (kept alive) forever: bound the wait
	// for the response, which does not depend on the object's size. The
	// upload is then retried like any other failure.
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.ResponseHeaderTimeout = 2 * time.Minute
	})
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithHTTPClient(httpClient))
	if err != nil {
		return fmt.Errorf("aws config: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if s.s3Endpoint != "" {
			o.BaseEndpoint = aws.String(s.s3Endpoint)
		}
		o.UsePathStyle = s.s3PathStyle
	})
	sk, err := sink.New(s3c, sink.Config{Bucket: s.s3Bucket, Prefix: s.s3Prefix, Format: s.format, Compression: s.compression, PartSize: s.partSize})
	if err != nil {
		return err
	}

	nc, err := stream.Connect(s.nats.URL, s.nats.Creds, "sluice-worker", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	streamCfg := s.nats.Config()

	reg := telemetry.NewRegistry()
	metrics := pipeline.NewMetrics(reg)
	mismatched := newReconcileGauge(reg)
	var consuming atomic.Pointer[pipeline.Pipeline]
	ready := func(ctx context.Context) error {
		p := consuming.Load()
		switch {
		case !nc.IsConnected():
			return fmt.Errorf("nats not connected (%s)", nc.Status())
		case p == nil:
			return errors.New("consumer not started")
		}
		if err := p.Writable(); err != nil {
			return fmt.Errorf("cannot write to S3: %w", err)
		}
		return nil
	}
	admin, err := telemetry.NewAdmin(s.adminAddr, reg, ready, s.pprof)
	if err != nil {
		return err
	}

	var g rungroup.Group
	g.Add(rungroup.SignalHandler(ctx, os.Interrupt, syscall.SIGTERM))
	g.Add(admin.Serve, func(error) {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = admin.Shutdown(sctx)
	})
	ensured := make(chan struct{})
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			slots, err := ensureConsumers(ctx, js, streamCfg, s, log)
			if err != nil {
				return nil // ctx ended first
			}
			close(ensured)
			tracker, err := ensureTracker(ctx, js, streamCfg.EventsConfig().Name, s, s3c, log)
			if err != nil {
				return nil // ctx ended first
			}
			rec, err := ensureProof(ctx, js, s.nats, log)
			if err != nil {
				return nil // ctx ended first
			}
			p := pipeline.New(pipeline.Config{
				Stream:           streamCfg.EventsConfig().Name,
				JS:               js,
				Sink:             sk,
				Limits:           s.limits,
				Workers:          s.workers,
				MaxInflightBytes: s.maxInflightBytes,
				MaxMessageBytes:  int(nc.MaxPayload()),
				MaxDeliver:       s.maxDeliver,
				DeadLetterRetry:  s.ackWait,
				KeepAlive:        s.ackWait / 3,
				ShutdownTimeout:  s.shutdownTimeout,
				Hours:            tracker,
				Metrics:          metrics,
				Log:              log,
				Record:           rec,
			})
			var member *partition.Member
			err = stream.Retry(ctx, log, "join the workers", func(ctx context.Context) error {
				member, err = partition.Join(ctx, partition.Config{
					JS: js, Stream: streamCfg.EventsConfig().Name, Slots: slots, TTL: s.ackWait, Replicas: streamCfg.Replicas, Log: log,
				}, p)
				return err
			})
			if err != nil {
				return nil // ctx ended first
			}
			consuming.Store(p)
			log.Info("worker consuming", "stream", streamCfg.EventsConfig().Name, "partitions", streamCfg.PartitionCount(),
				"member", member.ID(), "bucket", s.s3Bucket, "admin", admin.Addr())
			// Shutdown order: fetching stops and every batch is stored and
			// acked (or Nak'ed) by p.Run; only then does the worker leave,
			// so the next owners of its partitions start after its last
			// ack.
			tracker.Attach(p)
			var wg sync.WaitGroup
			wg.Go(func() { _ = member.Run(ctx) })
			wg.Go(func() { _ = tracker.Run(ctx) })
			wg.Go(func() { _ = p.WatchStalls(ctx, 2*s.ackWait) })
			err = p.Run(ctx)
			cancel()
			wg.Wait()
			member.Leave(context.WithoutCancel(ctx))
			return err
		}, func(error) { cancel() })
	}
	{
		// Side jobs: consumer lag, dead-letter stream depth, multipart
		// uploads abandoned by a killed worker, reconciliation.
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			select {
			case <-ensured:
			case <-ctx.Done():
				return nil
			}
			// A job that fails stops the others and the worker, rather than
			// leaving it running without, say, its lag metric.
			eg, ctx := errgroup.WithContext(ctx)
			eg.Go(func() error { return pipeline.WatchLag(ctx, js, streamCfg.EventsConfig().Name, 5*time.Second, metrics) })
			eg.Go(func() error { return pipeline.WatchDLQ(ctx, js, 5*time.Second, metrics) })
			eg.Go(func() error { cleanUploads(ctx, sk, log); return nil })
			eg.Go(func() error { return watchReconcile(ctx, js, streamCfg.EventsConfig().Name, mismatched, log) })
			return eg.Wait()
		}, func(error) { cancel() })
	}
	err = g.Run()
	if errors.Is(err, rungroup.ErrSignal) {
		log.Info("stopped", "reason", err)
		return nil
	}
	return err
}

// ensureConsumers creates the streams and one consumer per partition,
// retrying while NATS is unreachable. It returns the slots the workers
// share out: partition 0 to N-1, then (while messages stored before
// partitions existed are left) the unpartitioned consumer. It returns an
// error only when ctx ended first.
func ensureConsumers(ctx context.Context, js jetstream.JetStream, cfg stream.Config, s settings, log *slog.Logger) ([]jetstream.Consumer, error) {
	// Held messages are kept alive with InProgress (see pipeline.Pipeline),
	// so AckWait need not cover the batch age and upload time: it only says
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

// cleanUploads aborts, now and every hour, multipart uploads left behind by
// a worker killed mid-upload (any older than an hour), until ctx ends.
func cleanUploads(ctx context.Context, sk *sink.Sink, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := sk.AbortStale(ctx, time.Hour)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("clean up abandoned multipart uploads", "err", err)
		case n > 0:
			log.Info("aborted abandoned multipart uploads", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
