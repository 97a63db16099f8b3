package pipeline

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/object"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

// TestHandBacksRecordAndCount: the records of one message are counted,
// once per delivery however often written, apart from another message's
// and another incarnation's.
func TestHandBacksRecordAndCount(t *testing.T) {
	_, js := devtest.JetStream(t, devtest.NATS(t))
	hb, err := EnsureHandBacks(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	const tag = "20260101T000000.000000000Z"
	recs := []HandBack{{tag, 7, 1}, {tag, 7, 3}, {tag, 7, 3}, {tag, 8, 1}, {"20270101T000000.000000000Z", 7, 2}}
	for i := range 2500 { // more than one chunk of publishes
		recs = append(recs, HandBack{tag, 100, uint64(i + 1)})
	}
	if err := hb.Record(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tag  string
		seq  uint64
		want int
	}{{tag, 7, 2}, {tag, 8, 1}, {tag, 9, 0}, {tag, 100, 2500}, {"20270101T000000.000000000Z", 7, 1}} {
		if n, err := hb.Count(t.Context(), c.tag, c.seq); err != nil || n != c.want {
			t.Errorf("Count(%s, %d) = %d, %v; want %d", c.tag, c.seq, n, err, c.want)
		}
	}
}

// flappingS3 is the real client whose next `refusals` PutObject calls are
// made with a wrong secret, each followed by a refused write check (the
// worker's credentials are wrong while it uploads); the checks after that
// pass, so the worker takes the messages again. With object set, a
// PutObject of a key holding object is always refused, and the checks
// always pass: a refusal of that object only.
type flappingS3 struct {
	*switchingS3
	refusals atomic.Int64
	confirm  atomic.Bool
	object   string
}

func (c *flappingS3) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if c.object != "" && strings.Contains(aws.ToString(in.Key), c.object) {
		return c.bad.PutObject(ctx, in, o...)
	}
	if c.refusals.Add(-1) >= 0 {
		c.confirm.Store(true)
		return c.bad.PutObject(ctx, in, o...)
	}
	return c.good.PutObject(ctx, in, o...)
}

func (c *flappingS3) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, o ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	if c.confirm.Swap(false) {
		return c.bad.CreateMultipartUpload(ctx, in, o...)
	}
	return c.good.CreateMultipartUpload(ctx, in, o...)
}

// TestHandBacksDoNotCountTowardsMaxDeliver: a worker whose credentials are
// wrong each time it uploads hands the same messages back six times, with
// MaxDeliver 3. Its hand-backs are recorded, so the messages are not
// dead-lettered: they land once the credentials hold.
func TestHandBacksDoNotCountTowardsMaxDeliver(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	hb, err := EnsureHandBacks(t.Context(), h.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	s3c := &flappingS3{switchingS3: newSwitchingS3(h.s3srv.Endpoint())}
	s3c.refusals.Store(6)
	sk, err := sink.New(s3c, sink.Config{Bucket: devstack.S3Bucket, Prefix: h.prefix, Compression: "gzip"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 100 * time.Millisecond})
	cfg.Sink, cfg.HandBacks, cfg.MaxDeliver, cfg.HandBackDelay, cfg.Workers = sk, hb, 3, 50*time.Millisecond, 1
	for i := range 4 {
		h.publish("acme", hourAgo, i, 2, 10)
	}
	h.start(cfg)
	objs := h.waitEvents(8, 30*time.Second)
	if ids := checkObjects(t, objs); len(ids) != 8 {
		t.Errorf("%d distinct events stored, want 8", len(ids))
	}
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return h.streamMsgs() == 0 }, "messages left in the stream")
	if got := testutil.ToFloat64(cfg.Metrics.messages.WithLabelValues("dead_lettered")); got != 0 {
		t.Errorf("%v messages dead-lettered", got)
	}
	if got := testutil.ToFloat64(cfg.Metrics.handBacksRecorded); got < 6 {
		t.Errorf("%v hand-backs recorded, want one per message per refusal at least", got)
	}
	if s3c.refusals.Load() >= 0 {
		t.Errorf("the worker did not meet every refusal")
	}
}

// TestRefusedObjectStillReachesMaxDeliver: S3 refuses one tenant's
// objects only (AccessDenied on its prefix) while the write check passes.
// That refusal is not the worker's: its messages count each delivery and
// go to the DLQ at MaxDeliver, and the other tenant's messages, handed back
// meanwhile without counting, land.
func TestRefusedObjectStillReachesMaxDeliver(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	hb, err := EnsureHandBacks(t.Context(), h.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	s3c := &flappingS3{switchingS3: newSwitchingS3(h.s3srv.Endpoint()), object: "tenant=evil/"}
	sk, err := sink.New(s3c, sink.Config{Bucket: devstack.S3Bucket, Prefix: h.prefix, Compression: "gzip"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 100 * time.Millisecond})
	cfg.Sink, cfg.HandBacks, cfg.MaxDeliver, cfg.HandBackDelay = sk, hb, 3, 50*time.Millisecond
	h.publish("evil", hourAgo, 0, 1, 10)
	for i := range 20 {
		h.publish("acme", hourAgo, i+1, 1, 10)
	}
	h.start(cfg)
	dl := h.dlq(1)
	if dl[0].Subject != stream.DLQSubject("evil") || !strings.Contains(dl[0].Header.Get(stream.HeaderError), "MaxDeliver") {
		t.Errorf("dead letter on %s: %v", dl[0].Subject, dl[0].Header)
	}
	objs := h.waitEvents(20, 30*time.Second)
	if ids := checkObjects(t, objs); len(ids) != 20 {
		t.Errorf("%d distinct events stored, want 20", len(ids))
	}
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return h.streamMsgs() == 0 }, "messages left in the stream")
	if got := testutil.ToFloat64(cfg.Metrics.messages.WithLabelValues("dead_lettered")); got != 1 {
		t.Errorf("%v messages dead-lettered, want the refused one", got)
	}
}
