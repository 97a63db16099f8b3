package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/objkey"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/object"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

var hourAgo = time.Now().UTC().Add(-time.Hour)

// TestCutReasons checks that an object is cut on each limit and on
// shutdown, and that nothing is left unacknowledged.
func TestCutReasons(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	for _, tc := range []struct {
		reason   object.Reason
		lim      object.Limits
		msgs     int
		wantObjs int
	}{
		{object.ReasonEvents, object.Limits{MaxBytes: 1 << 30, MaxEvents: 10, MaxAge: time.Hour}, 30, 3},
		// each message is 2 events of about 105 bytes: 4 messages fill 800 bytes
		{object.ReasonBytes, object.Limits{MaxBytes: 800, MaxEvents: 1 << 20, MaxAge: time.Hour}, 16, 4},
		{object.ReasonAge, object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 200 * time.Millisecond}, 5, 1},
		{object.ReasonShutdown, object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: time.Hour}, 5, 1},
	} {
		t.Run(string(tc.reason), func(t *testing.T) {
			h.t = t
			h.prefix = string(tc.reason)
			events := 1
			if tc.reason == object.ReasonBytes {
				events = 2
			}
			cfg := h.config(tc.lim)
			cfg.Sink = h.sink("gzip", 0)
			cfg.Workers = 1 // one upload at a time: objects are cut in stream order
			for i := range tc.msgs {
				h.publish("acme", hourAgo, i, events, 80)
			}
			r := h.start(cfg)
			if tc.reason == object.ReasonShutdown {
				devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool {
					return r.p.InflightBytes() > 0 && h.consumerPending() == 0
				}, "messages not fetched")
				if err := r.stop(t); err != nil {
					t.Fatalf("Run: %v", err)
				}
			}
			objs := h.waitEvents(tc.msgs*events, 15*time.Second)
			ids := checkObjects(t, objs)
			if len(ids) != tc.msgs*events || len(objs) != tc.wantObjs {
				t.Errorf("%d objects with %d distinct events, want %d objects with %d", len(objs), len(ids), tc.wantObjs, tc.msgs*events)
			}
			if got := testutil.ToFloat64(cfg.Metrics.cuts.WithLabelValues(string(tc.reason))); got != float64(tc.wantObjs) {
				t.Errorf("objects cut for %s: %v, want %d", tc.reason, got, tc.wantObjs)
			}
			devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return h.streamMsgs() == 0 },
				"messages left unacknowledged")
			r.stop(t)
		})
	}
}

func (h *harness) consumerPending() uint64 {
	info, err := h.cons.Info(h.t.Context())
	if err != nil {
		h.t.Fatal(err)
	}
	return info.NumPending
}

// TestHourRolloverSplitsObjects: requests received either side of an hour
// land in two objects, each in its own partition.
func TestHourRolloverSplitsObjects(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	edge := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	h.publish("acme", edge.Add(-time.Millisecond), 1, 3, 10)
	h.publish("acme", edge, 2, 3, 10)
	h.publish("acme", edge.Add(-2*time.Millisecond), 3, 3, 10)
	h.start(h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 300 * time.Millisecond}))
	objs := h.waitEvents(9, 15*time.Second)
	checkObjects(t, objs)
	if len(objs) != 2 {
		t.Fatalf("%d objects, want 2", len(objs))
	}
	for _, o := range objs {
		k, _ := objkey.Parse(o.Key)
		want := 6
		if k.Hour.Equal(edge) {
			want = 3
		}
		if len(o.Lines) != want {
			t.Errorf("%s: %d lines, want %d", o.Key, len(o.Lines), want)
		}
	}
}

// TestS3OutageKeepsEverything: while every S3 call fails with 503, nothing
// is acknowledged, the worker stops fetching at its in-flight bound, and
// everything lands once S3 is back. The outage lasts a few seconds instead
// of 30: long enough for several retries and keep-alives (AckWait is 3s, so
// messages not kept alive would be redelivered), and the behaviour does not
// depend on its length.
func TestS3OutageKeepsEverything(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{AckWait: 3 * time.Second})
	const bound = 256 << 10
	cfg := h.config(object.Limits{MaxBytes: 64 << 10, MaxEvents: 1 << 20, MaxAge: 100 * time.Millisecond})
	cfg.MaxInflightBytes = bound
	cfg.MaxMessageBytes = 8 << 10 // the largest message this test sends
	h.s3.down.Store(true)
	const msgs = 400 // about 1.6 MiB: six times the bound
	for i := range msgs {
		h.publish("acme", hourAgo, i, 4, 900)
	}
	r := h.start(cfg)
	var peak int64
	outage := time.Now()
	devtest.Eventually(t, 20*time.Second, 10*time.Millisecond, func() bool {
		peak = max(peak, r.p.InflightBytes())
		return time.Since(outage) > 4*time.Second && testutil.ToFloat64(cfg.Metrics.uploadRetries) >= 5
	}, "no upload retries during the outage")
	if acked := testutil.ToFloat64(cfg.Metrics.messages.WithLabelValues("acked")); acked != 0 {
		t.Fatalf("%v messages acked while S3 was down", acked)
	}
	if got := h.streamMsgs(); got != msgs {
		t.Fatalf("stream holds %d messages during the outage, want %d", got, msgs)
	}
	if info, _ := h.cons.Info(t.Context()); info.NumPending == 0 || info.NumRedelivered > 0 {
		t.Errorf("consumer during outage: %d not fetched (want > 0: fetching stops at the bound), %d redelivered (want 0: kept alive)",
			info.NumPending, info.NumRedelivered)
	}
	// The bound may be passed by one fetch of at most MaxMessageBytes.
	if limit := int64(bound + cfg.MaxMessageBytes); peak > limit {
		t.Errorf("in-flight bytes peaked at %d, bound %d + one message %d", peak, bound, cfg.MaxMessageBytes)
	}
	t.Logf("in-flight peak %d bytes (bound %d)", peak, bound)

	h.s3.down.Store(false)
	objs := h.waitEvents(msgs*4, 30*time.Second)
	ids := checkObjects(t, objs)
	if len(ids) != msgs*4 {
		t.Errorf("%d distinct events, want %d", len(ids), msgs*4)
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return h.streamMsgs() == 0 }, "backlog not drained")
}

// TestSameObjectTwiceIsStoredOnce: uploading an object whose key exists with
// the same metadata succeeds without a second object (the 412 path); a key
// holding other messages is a conflict.
func TestSameObjectTwiceIsStoredOnce(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	sk := h.sink("zstd", 0)
	b := object.NewOpen(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: time.Hour})
	for i, seq := range []uint64{7, 9, 12} {
		b.Add(object.Item{Meta: metaAt(hourAgo, 2), Seq: seq, Body: []byte(fmt.Sprintf("{\"a\":%d}\n{\"b\":%d}\n", i, i)), Stream: h.streamTag()}, time.Now())
	}
	bt := b.All(object.ReasonShutdown)[0]
	obj, err := sk.Encode(bt)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := sk.Put(t.Context(), obj); err != nil {
			t.Fatalf("put %d: %v", i+1, err)
		}
	}
	other := obj
	other.Metadata = maps.Clone(obj.Metadata)
	other.Metadata[sink.MetaSeqsHash] = "0"
	if _, err := sk.Put(t.Context(), other); !errors.Is(err, sink.ErrConflict) {
		t.Fatalf("put of another object under the key: err = %v, want ErrConflict", err)
	}
	objs := h.objects()
	if len(objs) != 1 || len(objs[0].Lines) != 6 || !strings.HasSuffix(objs[0].Key, "00000000000000000007-00000000000000000012.ndjson.zst") {
		t.Fatalf("objects: %+v", objs)
	}
}

// TestConflictSplitsTheObject: when the key an object maps to already holds
// other messages of the same stream incarnation, the pipeline splits the
// object and stores every event.
func TestConflictSplitsTheObject(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	for i := range 4 {
		h.publish("acme", hourAgo, i, 1, 10)
	}
	key := objkey.Key{Prefix: h.prefix, Tenant: "acme", Hour: hourAgo.Truncate(time.Hour), FirstSeq: 1, LastSeq: 4, Ext: objkey.ExtGzip}
	_, err := h.s3srv.Client().PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String(devstack.S3Bucket), Key: aws.String(key.String()), Body: bytes.NewReader(emptyGzip()),
		Metadata: map[string]string{sink.MetaEventCount: "0", sink.MetaFirstSeq: "1", sink.MetaLastSeq: "4", sink.MetaStreamCreated: h.streamTag()},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 4, MaxAge: time.Hour})
	h.start(cfg)
	devtest.Eventually(t, 15*time.Second, 20*time.Millisecond, func() bool { return h.streamMsgs() == 0 }, "messages not acked")
	objs := h.objects()
	lines := 0
	for _, o := range objs {
		if o.Key != key.String() {
			lines += len(o.Lines)
		}
	}
	if lines != 4 || len(objs) != 3 {
		t.Errorf("%d objects, %d lines beside the conflicting one; want 3 objects and 4 lines", len(objs), lines)
	}
}

// TestPoisonAndMaxDeliverGoToDLQ: a message with bad headers, one with an
// undecodable body and one on its last allowed delivery go to SLUICE_DLQ
// with Sluice-Error and Sluice-Deliveries; the good messages around them
// land.
func TestPoisonAndMaxDeliverGoToDLQ(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{AckWait: 5 * time.Second})
	// the message that will exhaust MaxDeliver, delivered and Nak'ed twice
	tired := h.publish("acme", hourAgo, 2, 1, 10)
	h.fetchAndNak(2)
	h.publish("acme", hourAgo, 1, 2, 10)
	noHeaders := nats.NewMsg(stream.EventsSubject("acme"))
	noHeaders.Data = []byte(`{"a":1}`)
	if _, err := h.js.PublishMsg(t.Context(), noHeaders); err != nil {
		t.Fatal(err)
	}
	bad := nats.NewMsg(stream.EventsSubject("acme"))
	metaAt(hourAgo, 2).SetHeaders(bad.Header)
	bad.Data = []byte("{\"ok\":1}\n{\"cut\":\n")
	if _, err := h.js.PublishMsg(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	h.publish("acme", hourAgo, 3, 2, 10)

	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 200 * time.Millisecond})
	cfg.MaxDeliver = 3
	h.start(cfg)
	dl := h.dlq(3)
	byReason := map[string]*jetstream.RawStreamMsg{}
	for _, m := range dl {
		if m.Header.Get(stream.HeaderError) == "" || m.Header.Get(stream.HeaderDeliveries) == "" {
			t.Errorf("dead letter on %s without Sluice-Error or Sluice-Deliveries: %v", m.Subject, m.Header)
		}
		byReason[m.Subject+" "+m.Header.Get(stream.HeaderBatchID)] = m
		t.Logf("dead letter on %s: %s=%q %s=%q", m.Subject, stream.HeaderError, m.Header.Get(stream.HeaderError),
			stream.HeaderDeliveries, m.Header.Get(stream.HeaderDeliveries))
	}
	if m := byReason["sluice.dlq.acme "+tired]; m == nil || m.Header.Get(stream.HeaderDeliveries) != "3" ||
		!strings.Contains(m.Header.Get(stream.HeaderError), "MaxDeliver") {
		t.Errorf("max-delivered message: %+v", m)
	}
	if m := byReason["sluice.dlq.acme "]; m == nil || !strings.Contains(m.Header.Get(stream.HeaderError), "Sluice-Tenant") && !strings.Contains(m.Header.Get(stream.HeaderError), "Sluice-Batch-Id") {
		t.Errorf("headerless message: %+v", m)
	}
	if m := byReason["sluice.dlq.acme "+bad.Header.Get(stream.HeaderBatchID)]; m == nil || string(m.Data) != string(bad.Data) ||
		!strings.Contains(m.Header.Get(stream.HeaderError), "undecodable") {
		t.Errorf("undecodable message: %+v", m)
	}
	objs := h.waitEvents(4, 15*time.Second)
	if ids := checkObjects(t, objs); len(ids) != 4 {
		t.Errorf("good events stored: %v, want 4", ids)
	}
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return h.streamMsgs() == 0 }, "stream not empty")
	if got := testutil.ToFloat64(cfg.Metrics.messages.WithLabelValues("dead_lettered")); got != 3 {
		t.Errorf("dead_lettered = %v, want 3", got)
	}
}

// TestLostLastDeliveryGoesToDLQ: a message whose last allowed delivery was
// never settled (its worker died) comes back after AckWait, as the consumer
// redelivers without limit, and the next worker dead-letters it.
func TestLostLastDeliveryGoesToDLQ(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{AckWait: time.Second})
	id := h.publish("acme", hourAgo, 1, 1, 10)
	h.fetchAndNak(1)
	// the second and last delivery, to a worker that dies holding it
	mb, err := h.cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for range mb.Messages() {
	}
	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 200 * time.Millisecond})
	cfg.MaxDeliver = 2
	h.start(cfg)
	dl := h.dlq(1)
	if dl[0].Header.Get(stream.HeaderBatchID) != id || dl[0].Header.Get(stream.HeaderDeliveries) != "3" {
		t.Errorf("dead letter headers %v", dl[0].Header)
	}
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return h.streamMsgs() == 0 }, "message not removed from the stream")
	if objs := h.objects(); len(objs) != 0 {
		t.Errorf("%d objects stored from a message past MaxDeliver", len(objs))
	}
}

// TestTwoWorkersShareTheConsumer: two pipelines on one durable consumer
// store every event once, under unique keys.
func TestTwoWorkersShareTheConsumer(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	lim := object.Limits{MaxBytes: 16 << 10, MaxEvents: 1 << 20, MaxAge: 200 * time.Millisecond}
	a, b := h.start(h.config(lim)), h.start(h.config(lim))
	const msgs = 600
	want := 0
	for i := range msgs {
		tenant := []string{"acme", "beta", "gamma"}[i%3]
		h.publish(tenant, hourAgo, i, 1+i%5, 40)
		want += 1 + i%5
	}
	objs := h.waitEvents(want, 30*time.Second)
	ids := checkObjects(t, objs)
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	if len(ids) != want {
		t.Errorf("%d events stored, want %d", len(ids), want)
	}
	acked := func(r *running) float64 { return testutil.ToFloat64(r.p.cfg.Metrics.messages.WithLabelValues("acked")) }
	if acked(a) == 0 || acked(b) == 0 {
		t.Errorf("acked by each worker: %v and %v; want both to work", acked(a), acked(b))
	}
	t.Logf("%d objects; acked %v + %v", len(objs), acked(a), acked(b))
}

func metaAt(at time.Time, events int) envelope.Meta {
	return envelope.Meta{Tenant: "acme", BatchID: envelope.NewBatchID(), ReceivedAt: at, EventCount: events}
}

// fetchAndNak fetches one message n times, Nak'ing it each time, as a
// worker that fails would.
func (h *harness) fetchAndNak(n int) {
	h.t.Helper()
	for range n {
		mb, err := h.cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			h.t.Fatal(err)
		}
		for m := range mb.Messages() {
			if err := m.Nak(); err != nil {
				h.t.Fatal(err)
			}
		}
	}
}

func emptyGzip() []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_ = zw.Close()
	return b.Bytes()
}

// hangAfterPut stores objects and then hangs until its context ends, as a
// worker that dies between storing an object and acknowledging it.
type hangAfterPut struct{ *faultyS3 }

func (h hangAfterPut) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if _, err := h.faultyS3.PutObject(ctx, in, o...); err != nil {
		return nil, err
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestRedeliveredObjectLandsOnce: a worker stores an object and dies before
// acking; the next worker gets those messages again mixed with new ones. It
// regathers the redelivered ones into the same object, meets the stored
// object (412) and acks them, so no event is stored twice.
func TestRedeliveredObjectLandsOnce(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	for i := range 5 {
		h.publish("acme", hourAgo, i, 2, 10)
	}
	cfgA := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 10, MaxAge: time.Hour})
	skA, err := sink.New(hangAfterPut{h.s3}, sink.Config{Bucket: devstack.S3Bucket, Prefix: h.prefix, Compression: "gzip"})
	if err != nil {
		t.Fatal(err)
	}
	cfgA.Sink, cfgA.ShutdownTimeout = skA, 200*time.Millisecond
	a := h.start(cfgA)
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return len(h.objects()) == 1 }, "first worker stored nothing")
	if err := a.stop(t); err == nil {
		t.Fatal("the dying worker reported its object stored")
	}
	for i := 5; i < 8; i++ {
		h.publish("acme", hourAgo, i, 2, 10)
	}
	cfgB := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1000, MaxAge: 300 * time.Millisecond})
	h.start(cfgB)
	devtest.Eventually(t, 15*time.Second, 20*time.Millisecond, func() bool { return h.streamMsgs() == 0 }, "messages not acked")
	objs := h.objects()
	ids := checkObjects(t, objs)
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	if len(ids) != 16 || len(objs) != 2 {
		t.Errorf("%d objects with %d events, want 2 objects with 16", len(objs), len(ids))
	}
	if got := testutil.ToFloat64(cfgB.Metrics.cuts.WithLabelValues(string(object.ReasonRegather))); got != 1 {
		t.Errorf("regathered objects: %v, want 1", got)
	}
}

// TestShutdownTimeoutNaksWhatIsNotStored: when S3 is down at SIGTERM, the
// pipeline gives up ShutdownTimeout later, Naks every message it holds (the
// object being retried and the objects still waiting for an uploader) so
// another worker takes them at once, and reports the objects not stored.
func TestShutdownTimeoutNaksWhatIsNotStored(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	const msgs = 30
	for i := range msgs {
		h.publish([]string{"acme", "beta", "gamma"}[i%3], hourAgo, i, 1, 10)
	}
	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 50 * time.Millisecond})
	cfg.Workers = 1 // one object retried, the others wait for the uploader
	cfg.ShutdownTimeout = 300 * time.Millisecond
	h.s3.down.Store(true)
	r := h.start(cfg)
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool {
		return testutil.ToFloat64(cfg.Metrics.uploadRetries) >= 1 && h.consumerPending() == 0 &&
			testutil.ToFloat64(cfg.Metrics.cuts.WithLabelValues(string(object.ReasonAge))) >= 3
	}, "objects not cut and retried")
	err := r.stop(t)
	if err == nil || !strings.Contains(err.Error(), "not stored") {
		t.Fatalf("Run after the shutdown timeout: %v, want objects not stored", err)
	}
	if got := testutil.ToFloat64(cfg.Metrics.messages.WithLabelValues("retried")); got != msgs {
		t.Errorf("messages Nak'ed: %v, want %d", got, msgs)
	}
	if got := testutil.ToFloat64(cfg.Metrics.messages.WithLabelValues("acked")); got != 0 {
		t.Errorf("messages acked with S3 down: %v", got)
	}
	if got := h.streamMsgs(); got != msgs {
		t.Errorf("stream holds %d messages after the stop, want all %d", got, msgs)
	}
	// Nak'ed once each, not bounced back into the last fetch: the next
	// worker gets every one at once (AckWait is 30s), on its second delivery.
	mb, err := h.cons.Fetch(msgs, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range mb.Messages() {
		got++
		if md, err := m.Metadata(); err != nil || md.NumDelivered != 2 {
			t.Errorf("message after the stop: metadata %+v, %v; want delivered twice", md, err)
		}
		_ = m.Nak()
	}
	if got != msgs {
		t.Errorf("the next fetch got %d messages, want all %d at once", got, msgs)
	}
}

// failingList is the real client whose listings fail, counted.
type failingList struct {
	*faultyS3
	lists atomic.Int64
}

func (f *failingList) ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	f.lists.Add(1)
	return nil, errSlowDown
}

// TestFailedLookupPausesLookups: redelivered messages of many partitions
// while S3 fails cost one failed listing per lookupRetry, not one per
// partition, and are not taken for landed.
func TestFailedLookupPausesLookups(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	c := &failingList{faultyS3: h.s3}
	sk, err := sink.New(c, sink.Config{Bucket: devstack.S3Bucket, Prefix: h.prefix, Compression: "gzip"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: time.Hour})
	cfg.Sink = sk
	p := New(cfg)
	for i, tenant := range []string{"acme", "beta", "gamma", "delta"} {
		meta := metaAt(hourAgo, 1)
		meta.Tenant = tenant
		if l, ok := p.regather.landed(object.Item{Meta: meta, Seq: uint64(i + 1), Stream: "s"}, time.Now()); l != nil || ok {
			t.Errorf("landed object %+v (known %v) with S3 failing", l, ok)
		}
	}
	if n := c.lists.Load(); n != 1 {
		t.Errorf("%d listings for 4 partitions with S3 failing, want 1", n)
	}
}

// TestOpenObjectOutlivesAckWait: messages in an object that stays open for
// more than twice AckWait are kept alive (InProgress), never redelivered,
// and stored once when the object is cut.
func TestOpenObjectOutlivesAckWait(t *testing.T) {
	const ackWait = 2 * time.Second
	h := newHarness(t, stream.ConsumerConfig{AckWait: ackWait})
	const msgs = 5
	for i := range msgs {
		h.publish("acme", hourAgo, i, 2, 10)
	}
	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: time.Hour})
	cfg.KeepAlive = ackWait / 3 // as the worker sets it
	r := h.start(cfg)
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool {
		return r.p.InflightBytes() > 0 && h.consumerPending() == 0
	}, "messages not fetched")
	// Holding the object open past AckWait is the point: watch the consumer all along.
	for held := time.Now(); time.Since(held) < 2*ackWait+ackWait/2; time.Sleep(100 * time.Millisecond) {
		info, err := h.cons.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumRedelivered != 0 || info.NumAckPending != msgs {
			t.Fatalf("after %s in an open object: %d redelivered, %d held; want 0 and %d",
				time.Since(held).Round(time.Millisecond), info.NumRedelivered, info.NumAckPending, msgs)
		}
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	ids := checkObjects(t, h.objects())
	if len(ids) != msgs*2 {
		t.Errorf("%d events stored, want %d", len(ids), msgs*2)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	if got := h.streamMsgs(); got != 0 {
		t.Errorf("%d messages left unacknowledged", got)
	}
}
