package pipeline

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// TestReleaseHandsOverSettled: releasing a consumer cuts its open objects,
// and the release completes only once they are stored and acked (here
// after an S3 outage); from then on the pipeline fetches nothing from it.
func TestReleaseHandsOverSettled(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	const msgs = 20
	cfg, r := h.startHolding(msgs)
	h.s3.down.Store(true)
	done := r.p.Release(stream.Consumer)
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return testutil.ToFloat64(cfg.Metrics.uploadRetries) >= 1 },
		"the handed-over object was not uploaded")
	select {
	case <-done:
		t.Fatal("release completed while its object was not stored")
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
	if got := testutil.ToFloat64(cfg.Metrics.cuts.WithLabelValues(string(object.ReasonHandover))); got != 1 {
		t.Errorf("%v objects cut for the handover, want 1", got)
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

// TestAcquireTakesAHandoverBack: a consumer acquired again while its
// handover waits for an object to be stored (S3 down) is read again at once:
// the handover's channel closes without waiting, and once S3 is back the
// held messages and new ones are stored by this pipeline, each once.
func TestAcquireTakesAHandoverBack(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	const msgs = 20
	cfg, r := h.startHolding(msgs)
	h.s3.down.Store(true)
	done := r.p.Release(stream.Consumer)
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return testutil.ToFloat64(cfg.Metrics.uploadRetries) >= 1 },
		"the handed-over object was not uploaded")
	r.p.Acquire(stream.Consumer, h.cons)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the handover taken back did not end while S3 was down")
	}
	if got := r.p.Reading(); len(got) != 1 || got[0] != stream.Consumer {
		t.Fatalf("reading %v after taking the consumer back", got)
	}
	for i := range 5 {
		h.publish("acme", hourAgo, msgs+i, 1, 10)
	}
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return r.p.InflightBytes() >= int64(msgs+5)*msgOverhead },
		"the consumer taken back was not read")
	h.s3.down.Store(false)
	if err := r.stop(t); err != nil { // the shutdown cut stores what it holds
		t.Fatal(err)
	}
	if ids := checkObjects(t, h.objects()); len(ids) != msgs+5 {
		t.Errorf("%d events stored, want %d", len(ids), msgs+5)
	}
}

// TestBusyConsumerFetchesLarge: the fetches of a worker's consumers share
// the budget's room by reserving it, not by a fixed part per consumer, so
// one busy partition among idle ones still gets large fetches (a worker
// owning every partition made fetches 16 times smaller, and paid for each).
func TestBusyConsumerFetchesLarge(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	busy := &largestFetch{Consumer: h.cons}
	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 200 * time.Millisecond})
	cfg.Consumer, cfg.MaxInflightBytes, cfg.FetchMessages = busy, 32<<20, 4096
	r := h.start(cfg)
	for i := range 15 {
		r.p.Acquire(fmt.Sprintf("idle-%02d", i), idleFetcher{})
	}
	time.Sleep(500 * time.Millisecond) // every consumer has fetched nothing once
	const msgs = 2500
	for i := range msgs {
		h.publish("acme", hourAgo, i, 1, 10)
	}
	devtest.Eventually(t, 60*time.Second, 20*time.Millisecond, func() bool { return h.streamMsgs() == 0 }, "messages not stored")
	// 32 MiB of room: half of it is 16 MiB, room for 4096 messages
	// (FetchMessages); a sixteenth share would be 1,024.
	if most := busy.most.Load(); most < 2048 {
		t.Errorf("the busy consumer's largest fetch asked for %d messages, want at least 2048", most)
	}
}

// largestFetch records the most messages a fetch asked for.
type largestFetch struct {
	jetstream.Consumer
	most atomic.Int64
}

func (f *largestFetch) Fetch(n int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	for m := f.most.Load(); int64(n) > m && !f.most.CompareAndSwap(m, int64(n)); m = f.most.Load() {
	}
	return f.Consumer.Fetch(n, opts...)
}

// idleFetcher is a consumer with nothing to deliver.
type idleFetcher struct{}

func (idleFetcher) Fetch(int, ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	time.Sleep(100 * time.Millisecond)
	return nil, jetstream.ErrNoMessages
}
