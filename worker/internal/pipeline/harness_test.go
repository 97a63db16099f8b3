package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/objkey"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/object"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

// harness is a real embedded JetStream and a real versitygw, with the
// streams and the consumer created as the worker creates them.
type harness struct {
	t      *testing.T
	nc     *nats.Conn
	js     jetstream.JetStream
	s3srv  *devstack.S3
	s3     *faultyS3
	cons   jetstream.Consumer
	ccfg   stream.ConsumerConfig
	prefix string
}

func newHarness(t *testing.T, cc stream.ConsumerConfig) *harness {
	t.Helper()
	n := devtest.NATS(t)
	nc, js := devtest.JetStream(t, n)
	h := &harness{t: t, nc: nc, js: js, s3srv: devtest.S3(t), prefix: "raw"}
	h.s3 = &faultyS3{Client: h.s3srv.Client()}
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	if cc.AckWait == 0 {
		cc.AckWait = 30 * time.Second
	}
	if cc.MaxAckPending == 0 {
		cc.MaxAckPending = 100000
	}
	h.ccfg = cc
	cons, err := stream.EnsureConsumer(t.Context(), js, stream.EventsStream, cc)
	if err != nil {
		t.Fatal(err)
	}
	h.cons = cons
	return h
}

// faultyS3 is the real client, made to fail every call with a 503 while
// down is set.
type faultyS3 struct {
	*s3.Client
	down  atomic.Bool
	calls atomic.Int64
}

var errSlowDown = &smithy.GenericAPIError{Code: "ServiceUnavailable", Message: "injected 503"}

func (f *faultyS3) fail() error {
	f.calls.Add(1)
	if f.down.Load() {
		return errSlowDown
	}
	return nil
}

func (f *faultyS3) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Client.PutObject(ctx, in, o...)
}

func (f *faultyS3) UploadPart(ctx context.Context, in *s3.UploadPartInput, o ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Client.UploadPart(ctx, in, o...)
}

func (f *faultyS3) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, o ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Client.CreateMultipartUpload(ctx, in, o...)
}

func (h *harness) sink(compression string, partSize int64) *sink.Sink {
	h.t.Helper()
	sk, err := sink.New(h.s3, sink.Config{Bucket: devstack.S3Bucket, Prefix: h.prefix, Compression: compression, PartSize: partSize})
	if err != nil {
		h.t.Fatal(err)
	}
	return sk
}

// config is a pipeline configuration for tests: fast retries and
// keep-alives, small fetches.
func (h *harness) config(lim object.Limits) Config {
	return Config{
		Consumer:         h.cons,
		JS:               h.js,
		Sink:             h.sink("gzip", 0),
		Limits:           lim,
		Workers:          2,
		MaxInflightBytes: 64 << 20,
		MaxMessageBytes:  int(h.nc.MaxPayload()),
		FetchMessages:    256,
		KeepAlive:        time.Second,
		RetryMin:         20 * time.Millisecond,
		RetryMax:         200 * time.Millisecond,
		ShutdownTimeout:  10 * time.Second,
		Metrics:          NewMetrics(prometheus.NewRegistry()),
		Log:              testLogger(),
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// running is a pipeline started by a test.
type running struct {
	p      *Pipeline
	cancel context.CancelFunc
	done   chan error
}

// start runs a pipeline until stop or the end of the test.
func (h *harness) start(cfg Config) *running {
	ctx, cancel := context.WithCancel(h.t.Context())
	r := &running{p: New(cfg), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- r.p.Run(ctx) }()
	h.t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// startHolding publishes msgs one-event messages of an hour ago, starts a
// pipeline whose objects are cut only after an hour, and returns once it
// holds every message in its open object.
func (h *harness) startHolding(msgs int) (Config, *running) {
	h.t.Helper()
	for i := range msgs {
		h.publish("acme", hourAgo, i, 1, 10)
	}
	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: time.Hour})
	r := h.start(cfg)
	devtest.Eventually(h.t, 10*time.Second, 10*time.Millisecond, func() bool { return r.p.InflightBytes() >= int64(msgs)*msgOverhead },
		"messages not fetched")
	return cfg, r
}

// stop ends the pipeline's context and returns what Run returned.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("pipeline did not stop within 30s")
		return nil
	}
}

// event is what tests put in every event.
type event struct {
	Msg int `json:"msg"`
	N   int `json:"n"`
	Pad string
}

// publish stores one request of n events, received at at, as the gateway
// would, and returns its batch id.
func (h *harness) publish(tenant string, at time.Time, msg, n, pad int) string {
	h.t.Helper()
	var body strings.Builder
	for i := range n {
		b, _ := json.Marshal(event{Msg: msg, N: i, Pad: strings.Repeat("x", pad)})
		body.Write(b)
		body.WriteByte('\n')
	}
	m := nats.NewMsg(stream.EventsSubject(tenant))
	meta := envelope.Meta{Tenant: tenant, BatchID: envelope.NewBatchID(), ReceivedAt: at, EventCount: n}
	meta.SetHeaders(m.Header)
	m.Data = []byte(body.String())
	if _, err := h.js.PublishMsg(h.t.Context(), m); err != nil {
		h.t.Fatal(err)
	}
	return meta.BatchID
}

// objects reads every object under the prefix.
func (h *harness) objects() []devtest.Object {
	h.t.Helper()
	return devtest.MustReadObjects(h.t, h.s3srv.Client(), devstack.S3Bucket, h.prefix+"/")
}

// waitEvents waits until the objects hold at least n lines and returns them.
func (h *harness) waitEvents(n int, within time.Duration) []devtest.Object {
	h.t.Helper()
	var objs []devtest.Object
	got := 0
	devtest.Eventually(h.t, within, 50*time.Millisecond, func() bool {
		objs = h.objects()
		got = countLines(objs)
		return got >= n
	}, fmt.Sprintf("want %d events in S3", n))
	return objs
}

func countLines(objs []devtest.Object) int {
	n := 0
	for _, o := range objs {
		n += len(o.Lines)
	}
	return n
}

// streamMsgs is how many messages the events stream still holds (not yet
// acknowledged: WorkQueue retention removes acked ones).
func (h *harness) streamMsgs() uint64 {
	h.t.Helper()
	st, err := h.js.Stream(h.t.Context(), stream.EventsStream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := st.Info(h.t.Context())
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Msgs
}

// dlq returns the messages in the dead-letter stream.
func (h *harness) dlq(want int) []*jetstream.RawStreamMsg {
	h.t.Helper()
	st, err := h.js.Stream(h.t.Context(), stream.DLQStream)
	if err != nil {
		h.t.Fatal(err)
	}
	devtest.Eventually(h.t, 15*time.Second, 50*time.Millisecond, func() bool {
		info, err := st.Info(h.t.Context())
		return err == nil && info.State.Msgs >= uint64(want)
	}, fmt.Sprintf("want %d dead letters", want))
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); len(out) < want; seq++ {
		m, err := st.GetMsg(h.t.Context(), seq)
		if err != nil {
			h.t.Fatalf("dead letter %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

// checkObjects checks every object against the key and metadata contract
// and returns the event ids it holds, counted.
func checkObjects(t *testing.T, objs []devtest.Object) map[string]int {
	t.Helper()
	ids := map[string]int{}
	keys := map[string]bool{}
	for _, o := range objs {
		k, err := objkey.Parse(o.Key)
		if err != nil {
			t.Fatalf("object key: %v", err)
		}
		if keys[o.Key] {
			t.Errorf("key %s listed twice", o.Key)
		}
		keys[o.Key] = true
		if o.Metadata[sink.MetaEventCount] != fmt.Sprint(len(o.Lines)) ||
			o.Metadata[sink.MetaFirstSeq] != fmt.Sprint(k.FirstSeq) || o.Metadata[sink.MetaLastSeq] != fmt.Sprint(k.LastSeq) {
			t.Errorf("key %s: metadata %v, %d lines", o.Key, o.Metadata, len(o.Lines))
		}
		for _, l := range o.Lines {
			var line struct {
				ID         string    `json:"id"`
				Tenant     string    `json:"tenant"`
				ReceivedAt time.Time `json:"received_at"`
				Data       event     `json:"data"`
			}
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			if line.Tenant != k.Tenant || !line.ReceivedAt.Truncate(time.Hour).Equal(k.Hour) {
				t.Errorf("line %s in %s", l, o.Key)
			}
			ids[line.ID]++
		}
	}
	return ids
}
