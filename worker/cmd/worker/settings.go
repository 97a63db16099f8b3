package main

import (
	"errors"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"time"

	"github.com/sluice-ingest/sluice/pkg/config"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/pkg/telemetry"
	"github.com/sluice-ingest/sluice/worker/internal/object"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

type settings struct {
	nats                           stream.Settings
	log                            telemetry.LogSettings
	adminAddr                      string
	consumer                       string
	workers                        int
	s3Bucket, s3Prefix, s3Endpoint string
	s3PathStyle                    bool
	limits                         object.Limits
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
	cs.Bytes(&s.limits.MaxBytes, "SLUICE_BATCH_MAX_BYTES", "64MiB", 1, "cut an object at this many uncompressed bytes")
	cs.Int(&s.limits.MaxEvents, "SLUICE_BATCH_MAX_EVENTS", 500000, 1, "cut an object at this many events")
	cs.Duration(&s.limits.MaxAge, "SLUICE_BATCH_MAX_AGE", time.Minute, 10*time.Millisecond, "cut an object this long after it opened")
	cs.Enum(&s.format, "SLUICE_FORMAT", sink.FormatNDJSON, []string{sink.FormatNDJSON, sink.FormatParquet}, "object format: NDJSON lines, or Parquet columns id, tenant, received_at, data")
	cs.Func("SLUICE_COMPRESSION", "", "compression (gzip, zstd, none): of the whole object for ndjson, of the pages inside the file for parquet; empty: gzip for ndjson, zstd for parquet", func(v string) error {
		if !slices.Contains([]string{"", "gzip", "zstd", "none"}, v) {
			return errors.New("want gzip, zstd or none")
		}
		s.compression = v
		return nil
	})
	cs.Bytes(&s.maxInflightBytes, "SLUICE_MAX_INFLIGHT_BYTES", "256MiB", 1, "bytes held in open objects and uploads; at the bound the worker stops fetching")
	cs.Bytes(&s.partSize, "SLUICE_MULTIPART_THRESHOLD", "16MiB", 5<<20, "objects above this size are uploaded in parts of this size")
	cs.Duration(&s.ackWait, "SLUICE_ACK_WAIT", 30*time.Second, 3*time.Second, "consumer AckWait: how soon a dead worker's messages are redelivered (held messages are kept alive with InProgress every third of it)")
	cs.Int(&s.maxDeliver, "SLUICE_MAX_DELIVER", 20, 2, "deliveries of one message, counted by the worker (hand-backs of a worker that cannot write to S3 do not count); the last one sends it to SLUICE_DLQ")
	cs.Int(&s.maxAckPending, "SLUICE_MAX_ACK_PENDING", 1000000, 1, "MaxAckPending of each partition's consumer: messages held in open objects and uploads")
	cs.Duration(&s.shutdownTimeout, "SLUICE_SHUTDOWN_TIMEOUT", 30*time.Second, 0, "longest time on SIGTERM to cut, store and ack every open object")
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

// setMemoryLimit sets the soft memory limit unless GOMEMLIMIT is in the
// environment. Held bytes are bounded by SLUICE_MAX_INFLIGHT_BYTES; the
// limit keeps the collector's headroom to half of that (plus the process's
// base), instead of doubling the heap.
func setMemoryLimit(s settings, getenv func(string) string, log *slog.Logger) {
	if getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := s.maxInflightBytes + s.maxInflightBytes/2 + 64<<20
	debug.SetMemoryLimit(limit)
	log.Debug("memory limit set", "bytes", limit)
}
