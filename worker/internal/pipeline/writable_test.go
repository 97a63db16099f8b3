package pipeline

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/object"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

// switchingS3 sends every call to S3 with the dev stack's credentials
// until wrong is set, then with a wrong secret, which S3 refuses. It counts
// the calls that write.
type switchingS3 struct {
	good, bad *s3.Client
	wrong     atomic.Bool
	writes    atomic.Int64
}

func newSwitchingS3(endpoint string) *switchingS3 {
	bad := s3.New(s3.Options{
		Region: devstack.S3Region, BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(devstack.S3AccessKey, "not-the-secret", ""),
	})
	return &switchingS3{good: devstack.NewS3Client(endpoint), bad: bad}
}

func (c *switchingS3) c() *s3.Client {
	if c.wrong.Load() {
		return c.bad
	}
	return c.good
}

func (c *switchingS3) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	c.writes.Add(1)
	return c.c().PutObject(ctx, in, o...)
}

func (c *switchingS3) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, o ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	c.writes.Add(1)
	return c.c().CreateMultipartUpload(ctx, in, o...)
}

func (c *switchingS3) UploadPart(ctx context.Context, in *s3.UploadPartInput, o ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	return c.c().UploadPart(ctx, in, o...)
}

func (c *switchingS3) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, o ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	return c.c().CompleteMultipartUpload(ctx, in, o...)
}

func (c *switchingS3) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, o ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	return c.c().AbortMultipartUpload(ctx, in, o...)
}

func (c *switchingS3) HeadObject(ctx context.Context, in *s3.HeadObjectInput, o ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	return c.c().HeadObject(ctx, in, o...)
}

func (c *switchingS3) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, o ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	return c.c().ListObjectsV2(ctx, in, o...)
}

func (c *switchingS3) ListMultipartUploads(ctx context.Context, in *s3.ListMultipartUploadsInput, o ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error) {
	return c.c().ListMultipartUploads(ctx, in, o...)
}

// countingHandler counts the records whose message starts with prefix,
// and passes every record on.
type countingHandler struct {
	slog.Handler
	prefix string
	n      *atomic.Int64
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.prefix) {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

// TestUnwritableWorkerHandsBack: two workers share the consumer. One loses
// its credentials while it holds messages: its upload is refused, it hands
// them back, fetches nothing more and says it cannot write (Writable, the
// gauge), logging it once however often it checks again. Every event lands
// once, through the healthy worker.
func TestUnwritableWorkerHandsBack(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	badS3 := newSwitchingS3(h.s3srv.Endpoint())
	badSink, err := sink.New(badS3, sink.Config{Bucket: devstack.S3Bucket, Prefix: h.prefix, Compression: "gzip"})
	if err != nil {
		t.Fatal(err)
	}
	lim := object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 300 * time.Millisecond}
	bad := h.config(lim)
	bad.Sink, bad.HandBackDelay = badSink, 500*time.Millisecond
	var refusals atomic.Int64
	bad.Log = slog.New(countingHandler{slog.NewTextHandler(t.Output(), nil), "cannot write to S3", &refusals})
	rb := h.start(bad)

	publish := func(from, n int) {
		for i := from; i < from+n; i++ {
			h.publish([]string{"acme", "beta"}[i%2], hourAgo, i, 2, 20)
		}
	}
	publish(0, 10)
	h.waitEvents(20, 15*time.Second)
	if err := rb.p.Writable(); err != nil {
		t.Fatalf("worker with good credentials: Writable = %v", err)
	}
	acked := testutil.ToFloat64(bad.Metrics.messages.WithLabelValues("acked"))

	// Its credentials go wrong while it takes the next messages.
	badS3.wrong.Store(true)
	publish(10, 10)
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return rb.p.Writable() != nil },
		"the worker did not notice it cannot write")
	good := h.config(lim)
	h.start(good)
	publish(20, 100)
	objs := h.waitEvents(240, 30*time.Second)
	ids := checkObjects(t, objs)
	if len(ids) != 240 {
		t.Errorf("%d distinct events stored, want 240", len(ids))
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return h.streamMsgs() == 0 }, "messages left in the stream")

	if got := testutil.ToFloat64(bad.Metrics.messages.WithLabelValues("acked")); got != acked {
		t.Errorf("the worker without credentials acked %v messages", got-acked)
	}
	if got := testutil.ToFloat64(bad.Metrics.messages.WithLabelValues("retried")); got < 10 {
		t.Errorf("the worker without credentials handed back %v messages, want the 10 it held at least", got)
	}
	if err := rb.p.Writable(); err == nil || !sink.Unwritable(err) {
		t.Errorf("Writable = %v, want the refusal", err)
	}
	if got := testutil.ToFloat64(bad.Metrics.s3Writable); got != 0 {
		t.Errorf("sluice_worker_s3_writable = %v on the worker without credentials", got)
	}
	if got := testutil.ToFloat64(good.Metrics.s3Writable); got != 1 {
		t.Errorf("sluice_worker_s3_writable = %v on the healthy worker", got)
	}
	// It checks again every RetryMax (200ms here): many refusals, one line.
	calls := badS3.writes.Load()
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return badS3.writes.Load() >= calls+5 },
		"the worker does not check whether it can write again")
	if n := refusals.Load(); n != 1 {
		t.Errorf("%d log lines about the refusal, want 1 a minute", n)
	}

	// Credentials fixed: it writes again.
	badS3.wrong.Store(false)
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return rb.p.Writable() == nil },
		"the worker did not notice it can write again")
	if got := testutil.ToFloat64(bad.Metrics.s3Writable); got != 1 {
		t.Errorf("sluice_worker_s3_writable = %v after the fix", got)
	}
}
