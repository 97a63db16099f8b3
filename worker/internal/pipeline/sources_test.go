package pipeline

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-ingest/sluice/pkg/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/batch"
)

// TestReleaseHandsOverSettled: releasing a consumer cuts its open batches,
// and the release completes only once they are stored and acked (here
// after an S3 outage); from then on the pipeline fetches nothing from it.
func TestReleaseHandsOverSettled(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	const msgs = 20
	for i := range msgs {
		h.publish("acme", hourAgo, i, 1, 10)
	}
	cfg := h.config(batch.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: time.Hour})
	r := h.start(cfg)
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return r.p.InflightBytes() >= msgs*msgOverhead },
		"messages not fetched")
	h.s3.down.Store(true)
	done := r.p.Release(stream.Consumer)
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return testutil.ToFloat64(cfg.Metrics.uploadRetries) >= 1 },
		"the handed-over batch was not uploaded")
	select {
	case <-done:
		t.Fatal("release completed while its batch was not stored")
	default:
	}
	h.s3.down.Store(false)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("release did not complete once S3 was back")
	}
	if got := testutil.ToFloat64(cfg.Metrics.messages.WithLabelValues("acked")); got != msgs {
		t.Errorf("%v messages acked at the end of the release, want %d", got, msgs)
	}
	if got := testutil.ToFloat64(cfg.Metrics.flushes.WithLabelValues(string(batch.ReasonHandover))); got != 1 {
		t.Errorf("%v batches cut for the handover, want 1", got)
	}
	if ids := checkObjects(t, h.objects()); len(ids) != msgs {
		t.Errorf("%d events stored, want %d", len(ids), msgs)
	}

	// The next owner gets every new message: this pipeline reads no more.
	for i := range 5 {
		h.publish("acme", hourAgo, msgs+i, 1, 10)
	}
	mb, err := h.cons.Fetch(5, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range mb.Messages() {
		got++
		_ = m.Ack()
	}
	if got != 5 || len(r.p.Reading()) != 0 {
		t.Errorf("the next owner fetched %d of 5 new messages; the pipeline still reads %v", got, r.p.Reading())
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
}
