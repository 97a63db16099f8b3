package manifest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/object"
	"github.com/sluice-ingest/sluice/worker/internal/partition"
	"github.com/sluice-ingest/sluice/worker/internal/pipeline"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

// memberTTL is the test workers' membership TTL (SLUICE_ACK_WAIT).
const memberTTL = 3 * time.Second

// worker is an in-process worker wired as worker/cmd/worker wires one: a
// pipeline, its tracker and its membership, on its own NATS connection.
// Its tracker does not run on a ticker: the test calls CloseHours at the
// times of the injected clock it chooses.
type worker struct {
	tr     *Tracker
	p      *pipeline.Pipeline
	stop   func()
	member *partition.Member
}

// startWorker starts a worker reading the partitions (of partitions)
// assigned to it, as member id.
func startWorker(t *testing.T, n *devstack.NATS, s3srv *devstack.S3, id string, partitions int, grace time.Duration, now func() time.Time) *worker {
	t.Helper()
	nc, js := devtest.JetStream(t, n)
	slots, err := stream.EnsureConsumers(t.Context(), js, "", partitions, stream.ConsumerConfig{AckWait: memberTTL})
	if err != nil {
		t.Fatal(err)
	}
	p, tr := newPipeline(t, nc, js, s3srv, grace, now)
	m, err := partition.Join(t.Context(), partition.Config{JS: js, Stream: stream.EventsStream, Slots: slots, TTL: memberTTL, ID: id, Log: discard()}, p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		mdone := make(chan struct{})
		go func() { defer close(mdone); _ = m.Run(ctx) }()
		_ = p.Run(ctx)
		<-mdone
		m.Leave(context.WithoutCancel(ctx))
	}()
	w := &worker{tr: tr, p: p, member: m, stop: func() { cancel(); <-done }}
	t.Cleanup(w.stop)
	return w
}

// newPipeline returns a pipeline reading nothing yet and its tracker.
func newPipeline(t *testing.T, nc *nats.Conn, js jetstream.JetStream, s3srv *devstack.S3, grace time.Duration, now func() time.Time) (*pipeline.Pipeline, *Tracker) {
	t.Helper()
	sk, err := sink.New(s3srv.Client(), sink.Config{Bucket: devstack.S3Bucket, Prefix: "raw", Compression: "gzip"})
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracker(TrackerConfig{
		Writer: &Writer{S3: s3srv.Client(), Bucket: devstack.S3Bucket, Prefix: "raw"},
		Stream: eventsStream(t, js), Hours: openHours(t, js, grace), Grace: grace, Now: now, Log: discard(),
	})
	p := pipeline.New(pipeline.Config{
		Stream: stream.EventsStream, JS: js, Sink: sk,
		Limits:  object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 100 * time.Millisecond},
		Workers: 2, MaxMessageBytes: int(nc.MaxPayload()), KeepAlive: time.Second, ShutdownTimeout: 10 * time.Second,
		Hours: tr, Metrics: pipeline.NewMetrics(prometheus.NewRegistry()), Log: discard(),
	})
	tr.Attach(p)
	return p, tr
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// reads waits until the pipeline reads exactly the consumers names.
func reads(t *testing.T, p *pipeline.Pipeline, names ...string) {
	t.Helper()
	devtest.Eventually(t, 20*time.Second, 10*time.Millisecond, func() bool {
		got := p.Reading()
		slices.Sort(got)
		return slices.Equal(got, names)
	}, fmt.Sprintf("the pipeline does not read %v", names))
}

// publishAt publishes a message of tenant received at at, with two
// events, and returns its stream sequence.
func publishAt(t *testing.T, js jetstream.JetStream, tenant string, at time.Time, i int) uint64 {
	t.Helper()
	m := nats.NewMsg(stream.EventsSubject(tenant))
	envelope.Meta{Tenant: tenant, BatchID: envelope.NewBatchID(), ReceivedAt: at, EventCount: 2}.SetHeaders(m.Header)
	m.Data = fmt.Appendf(nil, "{\"i\":%d}\n{\"i\":%d}\n", i, i)
	ack, err := js.PublishMsg(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// streamEmpty waits until the events stream holds nothing: every message
// stored and acked.
func streamEmpty(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	devtest.Eventually(t, 30*time.Second, 20*time.Millisecond, func() bool {
		st, err := js.Stream(t.Context(), stream.EventsStream)
		if err != nil {
			return false
		}
		info, err := st.Info(t.Context())
		return err == nil && info.State.Msgs == 0
	}, "messages left in the events stream")
}

// readManifests returns the manifests stored under raw/, by key.
func readManifests(t *testing.T, c *s3.Client) map[string]Manifest {
	t.Helper()
	out := map[string]Manifest{}
	for _, o := range devtest.MustReadObjects(t, c, devstack.S3Bucket, "raw/") {
		if _, ok := manifestNumber(o.Key); ok {
			var m Manifest
			if err := json.Unmarshal([]byte(o.Lines[0]+joinRest(o.Lines)), &m); err != nil {
				t.Fatalf("%s: %v", o.Key, err)
			}
			out[o.Key] = m
		}
	}
	return out
}

// onlyFirst returns the tenant-hour's first manifest, failing unless it is
// the only manifest stored.
func onlyFirst(t *testing.T, c *s3.Client, tenant string, hour time.Time) Manifest {
	t.Helper()
	key := "raw/tenant=" + tenant + "/dt=" + hour.Format("2006-01-02") + "/hour=" + hour.Format("15") + "/" + Name
	got := readManifests(t, c)
	m, ok := got[key]
	if !ok || len(got) != 1 {
		t.Fatalf("manifests %v, want %s alone", keys(got), key)
	}
	return m
}

// openKeys is the number of keys left in the open hours' bucket.
func openKeys(t *testing.T, js jetstream.JetStream) int {
	t.Helper()
	kv, err := js.KeyValue(t.Context(), stream.HoursBucket)
	if err != nil {
		t.Fatal(err)
	}
	lister, err := kv.ListKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range lister.Keys() {
		n++
	}
	return n
}

func countLines(objs []devtest.Object) int {
	n := 0
	for _, o := range objs {
		if _, ok := manifestNumber(o.Key); !ok {
			n += len(o.Lines)
		}
	}
	return n
}
