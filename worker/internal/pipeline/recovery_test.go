package pipeline

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// TestUploadsRetryOnceS3IsBack: an upload waiting out its backoff after
// failing during an S3 outage is retried as soon as another upload goes
// through, not at the end of its backoff (here at least 5 s).
func TestUploadsRetryOnceS3IsBack(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 100 * time.Millisecond})
	cfg.RetryMin, cfg.RetryMax = 5*time.Second, time.Minute
	h.s3.down.Store(true)
	h.start(cfg)
	h.publish("acme", hourAgo, 0, 1, 10)
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return testutil.ToFloat64(cfg.Metrics.uploadRetries) >= 1 },
		"the first object was not tried during the outage")
	h.s3.down.Store(false)
	h.publish("beta", hourAgo, 1, 1, 10) // a new object, uploaded at once
	h.waitEvents(2, 4*time.Second)
}
