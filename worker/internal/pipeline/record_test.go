package pipeline

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/ledger"
	"github.com/sluice-ingest/sluice/pkg/receipts"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// proof creates the receipts bucket and the counter stream as the worker
// does and returns the real recorder.
func (h *harness) proof() Recorded {
	h.t.Helper()
	kv, err := receipts.Ensure(h.t.Context(), h.js, time.Hour, 1)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := ledger.Ensure(h.t.Context(), h.js, 1); err != nil {
		h.t.Fatal(err)
	}
	return Recorded{JS: h.js, Receipts: receipts.NewWriter(h.js, kv)}
}

// counts reads the tenant's counters of hour.
func (h *harness) counts(tenant string, hour time.Time) ledger.Counts {
	h.t.Helper()
	hour = hour.UTC().Truncate(time.Hour)
	c, err := ledger.Read(h.t.Context(), h.js, tenant, hour, hour)
	if err != nil {
		h.t.Fatal(err)
	}
	return c[0]
}

func (h *harness) receipt(tenant, batchID string) receipts.Receipt {
	h.t.Helper()
	r, err := receipts.NewReader(h.js).Get(h.t.Context(), tenant, batchID)
	if err != nil {
		h.t.Fatalf("receipt %s: %v", batchID, err)
	}
	return r
}

// failingRecorder fails every write while down is set.
type failingRecorder struct {
	Recorder
	down  atomic.Bool
	fails atomic.Int64
}

var errNoReceipts = errors.New("injected: receipts unavailable")

func (f *failingRecorder) Landed(ctx context.Context, l Landing) error {
	if f.down.Load() {
		f.fails.Add(1)
		return errNoReceipts
	}
	return f.Recorder.Landed(ctx, l)
}

func (f *failingRecorder) DeadLettered(ctx context.Context, d DeadLetter) error {
	if f.down.Load() {
		f.fails.Add(1)
		return errNoReceipts
	}
	return f.Recorder.DeadLettered(ctx, d)
}

// TestNoAckWithoutReceipt: while receipts cannot be written, stored objects'
// messages are kept, not acked, and a dead letter stays in the stream; once
// they can, every batch has its receipt (landed in its object, or
// dead-lettered with its error) and the counters hold each event once. A
// message without valid metadata, which no gateway accepted, has no
// receipt and is not counted.
func TestNoAckWithoutReceipt(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{AckWait: 5 * time.Second})
	rec := &failingRecorder{Recorder: h.proof()}
	rec.down.Store(true)
	var ids []string
	for i := range 4 {
		ids = append(ids, h.publish("acme", hourAgo, i, 3, 10))
	}
	bad := nats.NewMsg(stream.EventsSubject("acme"))
	badMeta := metaAt(hourAgo, 2)
	badMeta.SetHeaders(bad.Header)
	bad.Data = []byte("{\"ok\":1}\n")
	noHeaders := nats.NewMsg(stream.EventsSubject("acme"))
	noHeaders.Data = []byte(`{"a":1}`)
	for _, m := range []*nats.Msg{bad, noHeaders} {
		if _, err := h.js.PublishMsg(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 200 * time.Millisecond})
	cfg.Record, cfg.DeadLetterRetry = rec, time.Second
	h.start(cfg)

	h.waitEvents(12, 15*time.Second)
	devtest.Eventually(t, 15*time.Second, 20*time.Millisecond, func() bool { return rec.fails.Load() >= 5 }, "no receipt write tried")
	if n := h.streamMsgs(); n != 5 {
		t.Fatalf("%d messages left in the stream while receipts fail, want 5 (4 stored, 1 dead letter)", n)
	}
	rec.down.Store(false)
	devtest.Eventually(t, 20*time.Second, 20*time.Millisecond, func() bool { return h.streamMsgs() == 0 }, "messages not settled once receipts work")

	objs := h.objects()
	if len(objs) != 1 {
		t.Fatalf("%d objects, want 1", len(objs))
	}
	for _, id := range ids {
		r := h.receipt("acme", id)
		if r.Status != receipts.StatusLanded || r.Events != 3 || len(r.Objects) != 1 || r.Objects[0].Key != objs[0].Key || r.Objects[0].Events != 3 || r.LandedAt == nil {
			t.Errorf("receipt %s: %+v", id, r)
		}
	}
	if r := h.receipt("acme", badMeta.BatchID); r.Status != receipts.StatusDeadLettered || r.Events != 2 || r.Error == "" || len(r.Objects) != 0 {
		t.Errorf("dead letter's receipt: %+v", r)
	}
	if c := h.counts("acme", hourAgo); c.Landed != 12 || c.Dead != 2 {
		t.Errorf("counts %+v, want 12 landed, 2 dead", c)
	}
}

// recordThenHang writes the receipts and counts, then hangs until its
// context ends: a worker that dies after recording and before acking.
type recordThenHang struct{ Recorder }

func (r recordThenHang) Landed(ctx context.Context, l Landing) error {
	if err := r.Recorder.Landed(ctx, l); err != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestRedeliveredObjectCountsOnce: a worker stores an object, writes its
// receipts and counts and dies before acking; the next worker regathers the
// object, meets the stored one and writes the same receipts again. Each
// event is counted landed once.
func TestRedeliveredObjectCountsOnce(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	proof := h.proof()
	var ids []string
	for i := range 5 {
		ids = append(ids, h.publish("acme", hourAgo, i, 2, 10))
	}
	cfgA := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 10, MaxAge: time.Hour})
	cfgA.Record, cfgA.ShutdownTimeout = recordThenHang{proof}, 200*time.Millisecond
	a := h.start(cfgA)
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return h.counts("acme", hourAgo).Landed == 10 }, "first worker counted nothing")
	if err := a.stop(t); err == nil {
		t.Fatal("the dying worker reported its object stored")
	}
	for i := 5; i < 8; i++ {
		h.publish("acme", hourAgo, i, 2, 10)
	}
	cfgB := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1000, MaxAge: 300 * time.Millisecond})
	cfgB.Record = proof
	h.start(cfgB)
	devtest.Eventually(t, 15*time.Second, 20*time.Millisecond, func() bool { return h.streamMsgs() == 0 }, "messages not acked")
	if objs := h.objects(); len(objs) != 2 {
		t.Fatalf("%d objects, want 2", len(objs))
	}
	if c := h.counts("acme", hourAgo); c.Landed != 16 || c.Dead != 0 {
		t.Errorf("counts %+v, want 16 landed", c)
	}
	for _, id := range ids {
		if r := h.receipt("acme", id); r.Status != receipts.StatusLanded || len(r.Objects) != 1 {
			t.Errorf("receipt %s: %+v", id, r)
		}
	}
}
