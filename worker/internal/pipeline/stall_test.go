package pipeline

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/object"
)

func TestStalled(t *testing.T) {
	now := time.Now()
	const bound = 10 * time.Second
	info := func(pending uint64, ackPending int, delivered uint64) *jetstream.ConsumerInfo {
		return &jetstream.ConsumerInfo{NumPending: pending, NumAckPending: ackPending, Delivered: jetstream.SequenceInfo{Consumer: delivered}}
	}
	for _, tc := range []struct {
		name    string
		quiet   time.Duration
		waiting bool
		seq     uint64
		info    *jetstream.ConsumerInfo
		want    bool
	}{
		{"pending, nothing delivered for longer than the bound", 11 * time.Second, false, 7, info(5, 0, 7), true},
		{"deliveries never received", 11 * time.Second, false, 7, info(0, 3, 10), true},
		{"pending, but delivered lately", 9 * time.Second, false, 7, info(5, 0, 7), false},
		{"pending, but held back by the budget", 11 * time.Second, true, 7, info(5, 0, 7), false},
		{"holding its own deliveries (an S3 outage)", time.Minute, false, 10, info(0, 3, 10), false},
		{"nothing for it", time.Minute, false, 10, info(0, 0, 10), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pr progress
			pr.start(now.Add(-tc.quiet))
			pr.seq.Store(tc.seq)
			pr.waiting.Store(tc.waiting)
			if got := pr.stalled(tc.info, now, bound); got != tc.want {
				t.Errorf("stalled = %v, want %v", got, tc.want)
			}
		})
	}
}

// lossyFetcher is a real consumer whose fetches, while lose is set, drop
// what the server delivered to them, as a fetch does whose inbox was closed
// before its messages arrived.
type lossyFetcher struct {
	jetstream.Consumer
	lose atomic.Bool
}

func (l *lossyFetcher) Fetch(n int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	mb, err := l.Consumer.Fetch(n, opts...)
	if err != nil || !l.lose.Load() {
		return mb, err
	}
	for range mb.Messages() {
	}
	return emptyBatch{err: mb.Error()}, nil
}

type emptyBatch struct{ err error }

func (emptyBatch) Messages() <-chan jetstream.Msg {
	c := make(chan jetstream.Msg)
	close(c)
	return c
}

func (b emptyBatch) Error() error { return b.err }

// TestStallWatchCountsLostDeliveries: messages the server delivered that
// never reached the pipeline are a stall once the bound has passed; the
// watch counts it, and the messages land once deliveries reach the
// pipeline again (redelivered after AckWait).
func TestStallWatchCountsLostDeliveries(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{AckWait: 3 * time.Second})
	lossy := &lossyFetcher{Consumer: h.cons}
	lossy.lose.Store(true)
	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 3, MaxAge: time.Hour})
	cfg.Consumer = nil
	cfg.Stream = stream.EventsStream
	r := h.start(cfg)
	r.p.Acquire(h.cons.CachedInfo().Name, lossy)
	go func() { _ = r.p.WatchStalls(t.Context(), time.Second) }()
	for i := range 3 {
		h.publish("acme", hourAgo, i, 1, 10)
	}
	devtest.Eventually(t, 30*time.Second, 50*time.Millisecond, func() bool {
		return testutil.ToFloat64(cfg.Metrics.stalls) >= 1
	}, "no stall counted while every delivery was lost")
	lossy.lose.Store(false)
	objs := h.waitEvents(3, 30*time.Second)
	if ids := checkObjects(t, objs); len(ids) != 3 {
		t.Errorf("%d events stored, want 3", len(ids))
	}
}
