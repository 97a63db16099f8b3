package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/object"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

// fetchItems fetches n messages without settling them and returns them as
// object items of the stream's incarnation, by stream sequence.
func (h *harness) fetchItems(n int) map[uint64]object.Item {
	h.t.Helper()
	mb, err := h.cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		h.t.Fatal(err)
	}
	tag := h.streamTag()
	items := map[uint64]object.Item{}
	for m := range mb.Messages() {
		md, err := m.Metadata()
		if err != nil {
			h.t.Fatal(err)
		}
		meta, err := envelope.MetaFromHeaders(m.Headers())
		if err != nil {
			h.t.Fatal(err)
		}
		items[md.Sequence.Stream] = object.Item{Meta: meta, Seq: md.Sequence.Stream, Body: m.Data(), Msg: m, Stream: tag}
	}
	if len(items) != n {
		h.t.Fatalf("fetched %d messages, want %d", len(items), n)
	}
	return items
}

// TestRegatherTellsObjectsWithTheSameFirstSequence: the stored objects 10-11
// and 10-20 share a first sequence (message 10 was delivered twice and is
// in both). A redelivered message of 10-20 looked up first must not give
// 10-11 its event count, nor gather 10-11's messages into its object: 10
// and 11 are regathered into 10-11 again, meet it and are acked without a
// second copy.
func TestRegatherTellsObjectsWithTheSameFirstSequence(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	for i := range 20 {
		h.publish("acme", hourAgo, i, 1, 10)
	}
	items := h.fetchItems(20)
	sk := h.sink("gzip", 0)
	lim := object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: time.Hour}
	store := func(seqs ...uint64) {
		b := object.NewOpen(lim)
		for _, seq := range seqs {
			b.Add(items[seq], time.Now())
		}
		obj, err := sk.Encode(b.All(object.ReasonShutdown)[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sk.Put(t.Context(), obj); err != nil {
			t.Fatal(err)
		}
	}
	store(10, 11)
	store(10, 15, 20)
	for seq, it := range items {
		if seq != 10 && seq != 11 && seq != 15 {
			if err := it.Msg.DoubleAck(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg := h.config(lim)
	r := h.start(cfg)
	// Redelivered one at a time, so the lookups come in this order: 10
	// (in 10-11), 15 (in 10-20 only), 11 (in 10-11).
	for i, seq := range []uint64{10, 15, 11} {
		if err := items[seq].Msg.Nak(); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return r.p.InflightBytes() >= int64(i+1)*msgOverhead },
				"redelivered message not fetched")
		}
	}
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return h.consumerAckPending() <= 1 },
		"10-11 not regathered and acked")
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	ids := checkObjects(t, h.objects())
	id := func(seq uint64) string { return items[seq].Meta.BatchID + "-0" }
	// 15 lands again (10-20 cannot come back whole: 10 is 10-11's); 10 and
	// 11 do not.
	if ids[id(10)] != 2 || ids[id(11)] != 1 || ids[id(15)] != 2 || len(h.objects()) != 3 {
		t.Errorf("copies of 10, 11, 15: %d, %d, %d in %d objects; want 2, 1, 2 in 3", ids[id(10)], ids[id(11)], ids[id(15)], len(h.objects()))
	}
	if got := testutil.ToFloat64(cfg.Metrics.cuts.WithLabelValues(string(object.ReasonRegather))); got != 1 {
		t.Errorf("regathered objects: %v, want 1 (10-11)", got)
	}
	if got := h.streamMsgs(); got != 0 {
		t.Errorf("%d messages left unacknowledged", got)
	}
}

func (h *harness) consumerAckPending() int {
	info, err := h.cons.Info(h.t.Context())
	if err != nil {
		h.t.Fatal(err)
	}
	return info.NumAckPending
}

// gatedList is the real client whose listings wait until open is closed,
// or their context ends.
type gatedList struct {
	*faultyS3
	once   sync.Once
	listed chan struct{} // closed at the first listing
	open   chan struct{}
}

func (g *gatedList) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, o ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	g.once.Do(func() { close(g.listed) })
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.faultyS3.ListObjectsV2(ctx, in, o...)
}

// storeAndDie has a worker store one object per partition of the messages
// in the stream and die before acking them; they are Nak'ed when it stops.
func (h *harness) storeAndDie(lim object.Limits, objects int) {
	h.t.Helper()
	cfg := h.config(lim)
	sk, err := sink.New(hangAfterPut{h.s3}, sink.Config{Bucket: devstack.S3Bucket, Prefix: h.prefix, Compression: "gzip"})
	if err != nil {
		h.t.Fatal(err)
	}
	cfg.Sink, cfg.ShutdownTimeout, cfg.Workers = sk, 200*time.Millisecond, objects
	dying := h.start(cfg)
	devtest.Eventually(h.t, 10*time.Second, 20*time.Millisecond, func() bool { return len(h.objects()) == objects }, "the dying worker stored nothing")
	if err := dying.stop(h.t); err == nil {
		h.t.Fatal("the dying worker reported its objects stored")
	}
}

// TestLookupsOutliveShutdown: redelivered messages whose lookup is under
// way when the worker is told to stop are still regathered into their
// stored object (which they meet, so they are acked), not gathered with the
// new messages as fresh ones and stored a second time.
func TestLookupsOutliveShutdown(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	for i := range 5 {
		h.publish("acme", hourAgo, i, 2, 10)
	}
	h.storeAndDie(object.Limits{MaxBytes: 1 << 30, MaxEvents: 10, MaxAge: time.Hour}, 1)
	for i := 5; i < 8; i++ {
		h.publish("acme", hourAgo, i, 2, 10)
	}
	g := &gatedList{faultyS3: h.s3, listed: make(chan struct{}), open: make(chan struct{})}
	sk, err := sink.New(g, sink.Config{Bucket: devstack.S3Bucket, Prefix: h.prefix, Compression: "gzip"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1000, MaxAge: time.Hour})
	cfg.Sink = sk
	r := h.start(cfg)
	select {
	case <-g.listed:
	case <-time.After(10 * time.Second):
		t.Fatal("no lookup for the redelivered messages")
	}
	r.cancel() // SIGTERM while the lookup waits for S3
	close(g.open)
	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	objs := h.objects()
	ids := checkObjects(t, objs)
	storedOnce(t, ids)
	if len(ids) != 16 || len(objs) != 2 {
		t.Errorf("%d objects with %d events, want 2 objects with 16", len(objs), len(ids))
	}
	if got := h.streamMsgs(); got != 0 {
		t.Errorf("%d messages left unacknowledged", got)
	}
}

// slowList is the real client whose listings take delay each.
type slowList struct {
	*faultyS3
	delay time.Duration
}

func (s slowList) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, o ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.faultyS3.ListObjectsV2(ctx, in, o...)
}

// TestSlowLookupsKeepMessagesAlive: a redelivery across many partitions,
// each listing slower than half of AckWait, is looked up without any
// message waiting for its lookup past AckWait: each is delivered once
// more, not again while it waits.
func TestSlowLookupsKeepMessagesAlive(t *testing.T) {
	const ackWait = 2 * time.Second
	h := newHarness(t, stream.ConsumerConfig{AckWait: ackWait})
	tenants := []string{"t1", "t2", "t3", "t4", "t5", "t6"}
	const msgs = 24
	for i := range msgs {
		h.publish(tenants[i%len(tenants)], hourAgo, i, 1, 10)
	}
	h.storeAndDie(object.Limits{MaxBytes: 1 << 30, MaxEvents: msgs / len(tenants), MaxAge: time.Hour}, len(tenants))
	sk, err := sink.New(slowList{faultyS3: h.s3, delay: 1200 * time.Millisecond}, sink.Config{Bucket: devstack.S3Bucket, Prefix: h.prefix, Compression: "gzip"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1000, MaxAge: time.Hour})
	cfg.Sink, cfg.KeepAlive = sk, ackWait/3
	h.start(cfg)
	devtest.Eventually(t, 30*time.Second, 20*time.Millisecond, func() bool { return h.streamMsgs() == 0 }, "messages not acked")
	info, err := h.cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Delivered.Consumer != 2*msgs {
		t.Errorf("%d deliveries of %d messages, want %d: each to the dying worker and once to the next", info.Delivered.Consumer, msgs, 2*msgs)
	}
	ids := checkObjects(t, h.objects())
	storedOnce(t, ids)
	if len(ids) != msgs {
		t.Errorf("%d events stored, want %d", len(ids), msgs)
	}
}

// storedOnce checks that no event is stored more than once.
func storedOnce(t *testing.T, ids map[string]int) {
	t.Helper()
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
}

// TestLookupListsAfterTheMessageCame: a listing taken before an object was
// stored is not reused for a message redelivered more than keepAlive after
// it, and a lookup that fails while S3 is down is tried again: both find
// the object that holds the message, rather than gathering it anew (a
// second copy, and the object's landing counted under the copy's receipt).
func TestLookupListsAfterTheMessageCame(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	for i := range 4 {
		h.publish("acme", hourAgo, i, 1, 10)
	}
	items := h.fetchItems(4)
	lim := object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: time.Hour}
	cfg := h.config(lim)
	c := &outagedList{faultyS3: h.s3}
	sk, err := sink.New(c, sink.Config{Bucket: devstack.S3Bucket, Prefix: h.prefix, Compression: "gzip"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sink, cfg.KeepAlive = sk, 100*time.Millisecond
	p := New(cfg)
	if l, ok := p.regather.landed(items[1], time.Now()); l != nil || !ok { // lists the partition: nothing stored yet
		t.Fatalf("landed %+v, %v before anything was stored", l, ok)
	}
	b := object.NewOpen(lim)
	b.Add(items[1], time.Now())
	b.Add(items[2], time.Now())
	obj, err := cfg.Sink.Encode(b.All(object.ReasonShutdown)[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Sink.Put(t.Context(), obj); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * cfg.KeepAlive)
	if l := p.regather.lookUp(queued{it: items[1], since: time.Now()}); l == nil || l.FirstSeq != items[1].Seq {
		t.Errorf("a listing older than the message was reused: landed %+v", l)
	}

	time.Sleep(2 * cfg.KeepAlive)
	c.down.Store(true)
	time.AfterFunc(2*lookupRetry, func() { c.down.Store(false) })
	if l := p.regather.lookUp(queued{it: items[2], since: time.Now()}); l == nil || l.LastSeq != items[2].Seq {
		t.Errorf("a lookup during an S3 outage was not tried again: landed %+v", l)
	}
	if c.failed.Load() == 0 {
		t.Error("no listing failed during the outage")
	}
}

// outagedList is the real client whose listings fail while down is set.
type outagedList struct {
	*faultyS3
	down   atomic.Bool
	failed atomic.Int64
}

func (o *outagedList) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	if o.down.Load() {
		o.failed.Add(1)
		return nil, errSlowDown
	}
	return o.faultyS3.ListObjectsV2(ctx, in, opts...)
}
