package pipeline

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/objkey"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/object"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

// downAfterPuts is the real client whose puts fail with a 503 after the
// first few.
type downAfterPuts struct {
	*faultyS3
	ok   int64
	puts atomic.Int64
}

func (d *downAfterPuts) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if d.puts.Add(1) > d.ok {
		return nil, errSlowDown
	}
	return d.faultyS3.PutObject(ctx, in, o...)
}

// TestSplitSettlesBothHalves: an object whose key holds another one is
// split; when S3 then fails until the shutdown timeout, the messages of
// both halves are Nak'ed, so the next worker gets every one at once (not
// the second half only after AckWait).
func TestSplitSettlesBothHalves(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	const msgs = 4
	for i := range msgs {
		h.publish("acme", hourAgo, i, 1, 10)
	}
	key := objkey.Key{Prefix: h.prefix, Tenant: "acme", Hour: hourAgo.Truncate(time.Hour), FirstSeq: 1, LastSeq: msgs, Ext: objkey.ExtGzip}
	if _, err := h.s3srv.Client().PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String(devstack.S3Bucket), Key: aws.String(key.String()), Body: bytes.NewReader(emptyGzip()),
		Metadata: map[string]string{sink.MetaEventCount: "0", sink.MetaFirstSeq: "1", sink.MetaLastSeq: "4", "sluice-stream-created": h.streamTag()},
	}); err != nil {
		t.Fatal(err)
	}
	c := &downAfterPuts{faultyS3: h.s3, ok: 1} // the object's own put meets the 412, its halves' fail
	sk, err := sink.New(c, sink.Config{Bucket: devstack.S3Bucket, Prefix: h.prefix, Compression: "gzip"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: msgs, MaxAge: time.Hour})
	cfg.Sink, cfg.Workers, cfg.ShutdownTimeout = sk, 1, 300*time.Millisecond
	r := h.start(cfg)
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return testutil.ToFloat64(cfg.Metrics.uploadRetries) >= 1 },
		"first half not retried")
	if err := r.stop(t); err == nil || !strings.Contains(err.Error(), "not stored") {
		t.Fatalf("Run after the shutdown timeout: %v, want objects not stored", err)
	}
	if got := testutil.ToFloat64(cfg.Metrics.messages.WithLabelValues("retried")); got != msgs {
		t.Errorf("messages Nak'ed: %v, want %d", got, msgs)
	}
	if got := h.fetchAndNakAll(msgs, 3*time.Second); got != msgs {
		t.Errorf("the next fetch got %d messages, want all %d at once (AckWait is 30s)", got, msgs)
	}
}

// fetchAndNakAll fetches up to n messages within wait, Naks them and
// returns how many came.
func (h *harness) fetchAndNakAll(n int, wait time.Duration) int {
	h.t.Helper()
	mb, err := h.cons.Fetch(n, jetstream.FetchMaxWait(wait))
	if err != nil {
		h.t.Fatal(err)
	}
	got := 0
	for m := range mb.Messages() {
		got++
		_ = m.Nak()
	}
	return got
}
