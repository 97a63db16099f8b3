package manifest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/object"
	"github.com/sluice-ingest/sluice/worker/internal/pipeline"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

// clock is the tracker's injected clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// TestManifestOncePerHourAndAmended: a real pipeline stores a tenant's
// hour; its manifest is written only once the hour plus the grace has
// passed (on the injected clock) and lists every object with the hour's
// totals; a message of the hour stored after it gets an amended manifest
// under its own name, and the first stays as it was.
func TestManifestOncePerHourAndAmended(t *testing.T) {
	n, s3srv := devtest.NATS(t), devtest.S3(t)
	nc, js := devtest.JetStream(t, n)
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	cons, err := stream.EnsureConsumer(t.Context(), js, "", stream.ConsumerConfig{AckWait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sk, err := sink.New(s3srv.Client(), sink.Config{Bucket: devstack.S3Bucket, Prefix: "raw", Compression: "gzip"})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hour := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	const grace = 5 * time.Minute
	clk := &clock{now: hour.Add(20 * time.Minute)}
	w := &Writer{S3: s3srv.Client(), Bucket: devstack.S3Bucket, Prefix: "raw"}
	tr := NewTracker(TrackerConfig{Writer: w, Grace: grace, Now: clk.Now, Log: log,
		Stream: eventsStream(t, js), Hours: openHours(t, js, grace)})
	p := pipeline.New(pipeline.Config{
		Consumer: cons, JS: js, Sink: sk, Limits: object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 200 * time.Millisecond},
		Workers: 2, MaxMessageBytes: int(nc.MaxPayload()), KeepAlive: time.Second, ShutdownTimeout: 10 * time.Second,
		Hours: tr, Metrics: pipeline.NewMetrics(prometheus.NewRegistry()), Log: log,
	})
	tr.Attach(p)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	publish := func(i int, at time.Time) {
		m := nats.NewMsg(stream.EventsSubject("acme"))
		meta := envelope.Meta{Tenant: "acme", BatchID: envelope.NewBatchID(), ReceivedAt: at, EventCount: 2}
		meta.SetHeaders(m.Header)
		m.Data = fmt.Appendf(nil, "{\"i\":%d}\n{\"i\":%d}\n", i, i)
		if _, err := js.PublishMsg(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		publish(i, hour.Add(5*time.Minute+time.Duration(i)*time.Second))
		if i == 14 {
			time.Sleep(300 * time.Millisecond) // a second object
		}
	}
	manifests := func() map[string]Manifest {
		objs := devtest.MustReadObjects(t, s3srv.Client(), devstack.S3Bucket, "raw/")
		out := map[string]Manifest{}
		for _, o := range objs {
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
	waitStored := func(events int) {
		devtest.Eventually(t, 20*time.Second, 20*time.Millisecond, func() bool {
			info, err := cons.Info(t.Context())
			return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream == uint64(events/2)
		}, "messages not stored and acked")
	}
	waitStored(60)

	tr.CloseHours(t.Context())
	if m := manifests(); len(m) != 0 {
		t.Fatalf("manifest written before the hour ended: %v", m)
	}
	clk.set(hour.Add(time.Hour + grace - time.Second))
	tr.CloseHours(t.Context())
	if m := manifests(); len(m) != 0 {
		t.Fatalf("manifest written within the grace: %v", m)
	}
	clk.set(hour.Add(time.Hour + grace))
	tr.CloseHours(t.Context())
	first := "raw/tenant=acme/dt=2026-01-01/hour=10/_manifest.json"
	got := manifests()
	m, ok := got[first]
	if !ok || len(got) != 1 {
		t.Fatalf("manifests %v, want %s alone", keys(got), first)
	}
	checkManifest(t, s3srv.Client(), m, 60)
	if len(m.Objects) < 2 || m.Tenant != "acme" || m.Dt != "2026-01-01" || m.Hour != "10" || m.Amends != "" || !m.WrittenAt.Equal(hour.Add(time.Hour+grace)) {
		t.Errorf("manifest %+v", m)
	}
	tr.CloseHours(t.Context())
	if got := manifests(); len(got) != 1 {
		t.Errorf("manifests after a second round without change: %v", keys(got))
	}

	// A late message of the hour (as a redelivery after a crash during the
	// grace would be) lands after the manifest: an amendment lists it.
	publish(99, hour.Add(30*time.Minute))
	waitStored(62)
	clk.set(hour.Add(time.Hour + grace + time.Minute))
	tr.CloseHours(t.Context())
	got = manifests()
	am, ok := got["raw/tenant=acme/dt=2026-01-01/hour=10/_manifest-1.json"]
	if !ok || len(got) != 2 {
		t.Fatalf("manifests %v after a late object, want the first and _manifest-1.json", keys(got))
	}
	checkManifest(t, s3srv.Client(), am, 62)
	if am.Amends != first || len(am.Objects) != len(m.Objects)+1 {
		t.Errorf("amendment amends %q with %d objects, want %s with %d", am.Amends, len(am.Objects), first, len(m.Objects)+1)
	}
	if again := got[first]; again.Events != 60 {
		t.Errorf("the first manifest changed: %d events", again.Events)
	}
}

// eventsStream is the events stream's handle.
func eventsStream(t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	st, err := js.Stream(t.Context(), stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// openHours creates the open hours' bucket.
func openHours(t *testing.T, js jetstream.JetStream, grace time.Duration) *Hours {
	t.Helper()
	h, err := OpenHours(t.Context(), js, grace, 1)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// checkManifest compares a manifest with the stored objects of its hour.
func checkManifest(t *testing.T, c *s3.Client, m Manifest, events int) {
	t.Helper()
	total := 0
	var bytes int64
	for _, o := range m.Objects {
		head, err := c.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(devstack.S3Bucket), Key: aws.String(o.Key)})
		if err != nil {
			t.Fatalf("manifest lists %s: %v", o.Key, err)
		}
		md := head.Metadata
		if strconv.Itoa(o.Events) != md[sink.MetaEventCount] || strconv.FormatUint(o.FirstSeq, 10) != md[sink.MetaFirstSeq] ||
			strconv.FormatUint(o.LastSeq, 10) != md[sink.MetaLastSeq] || o.SHA256 != md[sink.MetaContentHash] || o.SHA256 == "" ||
			o.Bytes != aws.ToInt64(head.ContentLength) {
			t.Errorf("manifest entry %+v, object metadata %v, size %d", o, md, aws.ToInt64(head.ContentLength))
		}
		total += o.Events
		bytes += o.Bytes
	}
	if total != events || m.Events != events || m.Bytes != bytes {
		t.Errorf("manifest totals %d events, %d bytes; its objects hold %d events, %d bytes; want %d events", m.Events, m.Bytes, total, bytes, events)
	}
}

func joinRest(lines []string) string {
	s := ""
	for _, l := range lines[1:] {
		s += "\n" + l
	}
	return s
}

func keys(m map[string]Manifest) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
