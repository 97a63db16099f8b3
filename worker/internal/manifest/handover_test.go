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

	"github.com/sluice-ingest/sluice/pkg/devstack"
	"github.com/sluice-ingest/sluice/pkg/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/batch"
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
		Limits:  batch.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 100 * time.Millisecond},
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

// publishAt publishes a message of tenant received at at, with two events,
// on subject (the tenant's events subject when empty).
func publishAt(t *testing.T, js jetstream.JetStream, tenant string, at time.Time, i int) {
	t.Helper()
	m := nats.NewMsg(stream.EventsSubject(tenant))
	envelope.Meta{Tenant: tenant, BatchID: envelope.NewBatchID(), ReceivedAt: at, EventCount: 2}.SetHeaders(m.Header)
	m.Data = fmt.Appendf(nil, "{\"i\":%d}\n{\"i\":%d}\n", i, i)
	if _, err := js.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
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

// TestManifestAfterHandoverInGrace: a worker stores a tenant's hour and
// hands the partition over during the grace; the tenant then sends nothing
// more. The new owner, which never fetched a message of the hour, writes
// its manifest once the grace has passed, listing every event.
func TestManifestAfterHandoverInGrace(t *testing.T) {
	n, s3srv := devtest.NATS(t), devtest.S3(t)
	_, js := devtest.JetStream(t, n)
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	hour := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	const grace = 5 * time.Minute
	clk := &clock{now: hour.Add(50 * time.Minute)}
	// Members are sorted by id and partition 0 goes to the first: "b"
	// owns it alone, then hands it to "a".
	first := startWorker(t, n, s3srv, "b", 1, grace, clk.Now)
	reads(t, first.p, "sluice-workers-p00")
	for i := range 10 {
		publishAt(t, js, "acme", hour.Add(50*time.Minute+time.Duration(i)*time.Second), i)
	}
	streamEmpty(t, js)

	clk.set(hour.Add(time.Hour + grace/2))
	first.tr.CloseHours(t.Context())
	if m := readManifests(t, s3srv.Client()); len(m) != 0 {
		t.Fatalf("manifest written within the grace: %v", keys(m))
	}
	second := startWorker(t, n, s3srv, "a", 1, grace, clk.Now)
	reads(t, second.p, "sluice-workers-p00")
	reads(t, first.p)

	clk.set(hour.Add(time.Hour + grace))
	first.tr.CloseHours(t.Context())
	if m := readManifests(t, s3srv.Client()); len(m) != 0 {
		t.Fatalf("manifest written by the former owner: %v", keys(m))
	}
	second.tr.CloseHours(t.Context())
	checkManifest(t, s3srv.Client(), onlyFirst(t, s3srv.Client(), "acme", hour), 20)
	if left := openKeys(t, js); left != 0 {
		t.Errorf("%d keys left in %s after the manifest", left, stream.HoursBucket)
	}
}

// TestManifestAfterOwnerKilled: a real worker binary stores a tenant's
// hour (its grace is long: it cannot close the hour) and is SIGKILLed.
// The partition's next owner, which never fetched a message of the hour,
// writes its manifest once the hour plus the grace has passed on its
// clock, listing every event.
func TestManifestAfterOwnerKilled(t *testing.T) {
	n, s3srv := devtest.NATS(t), devtest.S3(t)
	_, js := devtest.JetStream(t, n)
	const grace = 2 * time.Hour
	admin := devtest.Addr(t)
	killed := devtest.Start(t, "worker", devtest.Binary(t, "github.com/sluice-ingest/sluice/worker/cmd/worker"), map[string]string{
		"SLUICE_NATS_URL":       n.URL(),
		"SLUICE_S3_ENDPOINT":    s3srv.Endpoint(),
		"SLUICE_S3_PATH_STYLE":  "true",
		"SLUICE_S3_BUCKET":      devstack.S3Bucket,
		"SLUICE_S3_PREFIX":      "raw",
		"SLUICE_PARTITIONS":     "1",
		"SLUICE_BATCH_MAX_AGE":  "100ms",
		"SLUICE_ACK_WAIT":       memberTTL.String(),
		"SLUICE_MANIFEST_GRACE": grace.String(),
		"SLUICE_ADMIN_ADDR":     admin,
		"AWS_ACCESS_KEY_ID":     devstack.S3AccessKey,
		"AWS_SECRET_ACCESS_KEY": devstack.S3SecretKey,
		"AWS_REGION":            devstack.S3Region,
	})
	devtest.WaitReady(t, killed, "http://"+admin+"/readyz")
	at := time.Now().UTC()
	hour := at.Truncate(time.Hour)
	for i := range 10 {
		publishAt(t, js, "acme", at, i)
	}
	streamEmpty(t, js)
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool {
		return countLines(devtest.MustReadObjects(t, s3srv.Client(), devstack.S3Bucket, "raw/")) == 20
	}, "the hour's events not stored")
	killed.Kill()
	if m := readManifests(t, s3srv.Client()); len(m) != 0 {
		t.Fatalf("the killed worker wrote a manifest: %v", keys(m))
	}

	clk := &clock{now: hour.Add(time.Hour + grace)}
	next := startWorker(t, n, s3srv, "next", 1, grace, clk.Now)
	reads(t, next.p, "sluice-workers-p00")
	next.tr.CloseHours(t.Context())
	checkManifest(t, s3srv.Client(), onlyFirst(t, s3srv.Client(), "acme", hour), 20)
}

// TestManifestWaitsForEverySource: a tenant's hour is stored partly
// before partitions existed (read by the unpartitioned consumer) and
// partly in its partition. While only the partition's consumer has been
// read, the hour is not closed, whatever the clock; once the
// unpartitioned consumer's messages are stored too, the first manifest
// lists every event of both.
func TestManifestWaitsForEverySource(t *testing.T) {
	n, s3srv := devtest.NATS(t), devtest.S3(t)
	nc, js := devtest.JetStream(t, n)
	old := stream.Config{}.EventsConfig()
	old.Subjects, old.SubjectTransform = []string{"sluice.events.>"}, nil
	if _, err := js.CreateStream(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	hour := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for i := range 3 {
		publishAt(t, js, "acme", hour.Add(10*time.Minute+time.Duration(i)*time.Second), i)
	}
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	slots, err := stream.EnsureConsumers(t.Context(), js, "", 1, stream.ConsumerConfig{AckWait: memberTTL})
	if err != nil {
		t.Fatal(err)
	}
	if len(slots) != 2 || slots[1].CachedInfo().Name != stream.Consumer {
		t.Fatalf("consumers %d, want the partition's and the unpartitioned one", len(slots))
	}
	for i := range 3 {
		publishAt(t, js, "acme", hour.Add(20*time.Minute+time.Duration(i)*time.Second), 10+i)
	}

	const grace = 5 * time.Minute
	clk := &clock{now: hour.Add(30 * time.Minute)}
	p, tr := newPipeline(t, nc, js, s3srv, grace, clk.Now)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	part, legacy := slots[0], slots[1]
	p.Acquire(part.CachedInfo().Name, part, jetstream.FetchPriorityGroup(stream.PriorityGroup))
	devtest.Eventually(t, 20*time.Second, 20*time.Millisecond, func() bool {
		info, err := part.Info(t.Context())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Consumer == 3
	}, "the partition's messages not stored and acked")

	clk.set(hour.Add(time.Hour + grace + time.Minute))
	tr.CloseHours(t.Context())
	if m := readManifests(t, s3srv.Client()); len(m) != 0 {
		t.Fatalf("manifest written while the unpartitioned consumer holds messages of the hour: %v", keys(m))
	}

	p.Acquire(legacy.CachedInfo().Name, legacy, jetstream.FetchPriorityGroup(stream.PriorityGroup))
	streamEmpty(t, js)
	tr.CloseHours(t.Context())
	m := onlyFirst(t, s3srv.Client(), "acme", hour)
	checkManifest(t, s3srv.Client(), m, 12)
	if left := openKeys(t, js); left != 0 {
		t.Errorf("%d keys left in %s after the manifest", left, stream.HoursBucket)
	}
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
