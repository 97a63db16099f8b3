package stream

import (
	"context"
	"log/slog"
	"time"

	"github.com/sluice-ingest/sluice/pkg/config"
)

// Settings are the NATS and stream settings every Sluice process takes.
type Settings struct {
	URL      string
	Creds    string
	Stream   string
	Replicas int
	MaxBytes int64
	// DuplicateWindow is the events stream's de-duplication window.
	DuplicateWindow time.Duration
	// DLQMaxBytes and DLQMaxAge bound the dead-letter stream.
	DLQMaxBytes int64
	DLQMaxAge   time.Duration
	// Partitions is SLUICE_PARTITIONS (partition.go).
	Partitions int
	// ReceiptTTL is how long the receipts bucket keeps a receipt.
	ReceiptTTL time.Duration
}

// Declare adds the settings to cs.
func (s *Settings) Declare(cs *config.Set) {
	cs.String(&s.URL, "SLUICE_NATS_URL", "nats://127.0.0.1:4222", "NATS server URL; a comma-separated list for a cluster")
	cs.String(&s.Creds, "SLUICE_NATS_CREDS", "", "NATS credentials (.creds) file")
	cs.String(&s.Stream, "SLUICE_STREAM", EventsStream, "JetStream stream holding accepted requests")
	cs.Int(&s.Replicas, "SLUICE_STREAM_REPLICAS", 1, 1, "stream replicas: 1 for one server, 3 for a NATS cluster")
	cs.Bytes(&s.MaxBytes, "SLUICE_STREAM_MAX_BYTES", "0", 0, "stream size bound (0 = unlimited); when full, the gateway answers 503 stream_full")
	cs.Duration(&s.DuplicateWindow, "SLUICE_DUPLICATE_WINDOW", DefaultDuplicateWindow, time.Second, "how long a retry with the same Idempotency-Key is stored once; every NATS server keeps each id in memory that long (about 200 bytes per request)")
	cs.Bytes(&s.DLQMaxBytes, "SLUICE_DLQ_MAX_BYTES", "1GiB", 0, "dead-letter stream size bound (0 = unlimited); when full, dead letters wait in the events stream")
	cs.Duration(&s.DLQMaxAge, "SLUICE_DLQ_MAX_AGE", 0, 0, "dead letters older than this are deleted (0 = kept until purged)")
	cs.Int(&s.Partitions, "SLUICE_PARTITIONS", DefaultPartitions, 1, "partitions the events stream spreads tenants over, each consumed by one worker at a time; the same value for every gateway and worker")
	cs.Duration(&s.ReceiptTTL, "SLUICE_RECEIPT_TTL", 7*24*time.Hour, time.Minute, "how long the receipt of a batch is kept in SLUICE_RECEIPTS after its last write")
}

// Config is the stream configuration these settings describe.
func (s Settings) Config() Config {
	return Config{Name: s.Stream, Replicas: s.Replicas, MaxBytes: s.MaxBytes, DuplicateWindow: s.DuplicateWindow, DLQMaxBytes: s.DLQMaxBytes, DLQMaxAge: s.DLQMaxAge, Partitions: s.Partitions}
}

// Retry calls fn until it succeeds or ctx ends, backing off from 100ms to 5s
// and logging each failure. It returns ctx's error when ctx ended first.
func Retry(ctx context.Context, log *slog.Logger, what string, fn func(ctx context.Context) error) error {
	backoff := 100 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fn(cctx)
		cancel()
		if err == nil {
			return nil
		}
		log.Warn(what+"; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
