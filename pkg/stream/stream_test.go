package stream_test

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/config"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// Several processes starting at once all succeed, and the streams end up
// exactly as the contract says.
func TestEnsureStreamsConcurrentAndIdempotent(t *testing.T) {
	n := devtest.NATS(t)
	cfg := stream.Config{MaxBytes: 1 << 30}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		_, js := devtest.JetStream(t, n)
		wg.Go(func() { errs <- stream.EnsureStreams(t.Context(), js, cfg) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	_, js := devtest.JetStream(t, n)
	if err := stream.EnsureStreams(t.Context(), js, cfg); err != nil {
		t.Fatalf("second ensure: %v", err)
	}
	s, err := js.Stream(t.Context(), stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	c := s.CachedInfo().Config
	if c.Retention != jetstream.WorkQueuePolicy || c.Discard != jetstream.DiscardNew || c.Storage != jetstream.FileStorage ||
		c.MaxBytes != 1<<30 || c.Duplicates != stream.DefaultDuplicateWindow || len(c.Subjects) != 1 || c.Subjects[0] != "sluice.events.*" ||
		c.SubjectTransform == nil || c.SubjectTransform.Destination != "sluice.events.{{partition(16,1)}}.{{wildcard(1)}}" {
		t.Errorf("events stream config %+v", c)
	}
	d, err := js.Stream(t.Context(), stream.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	if subj := d.CachedInfo().Config.Subjects; len(subj) != 1 || subj[0] != "sluice.dlq.>" {
		t.Errorf("dlq subjects %v", subj)
	}

	// A changed bound or duplicate window is applied by the next process
	// that starts.
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{MaxBytes: 2 << 30, DuplicateWindow: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(t.Context())
	if info.Config.MaxBytes != 2<<30 || info.Config.Duplicates != 30*time.Second {
		t.Errorf("max bytes after update = %d, duplicate window %s", info.Config.MaxBytes, info.Config.Duplicates)
	}

	cons, err := stream.EnsureConsumer(t.Context(), js, "", stream.ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ci := cons.CachedInfo().Config
	if ci.Durable != stream.Consumer || ci.AckPolicy != jetstream.AckExplicitPolicy || ci.MaxDeliver != -1 {
		t.Errorf("consumer config %+v", ci)
	}
}

// The dead-letter stream has its own bounds, not the events stream's.
func TestDLQHasItsOwnLimits(t *testing.T) {
	_, js := devtest.JetStream(t, devtest.NATS(t))
	cfg := stream.Config{MaxBytes: 1 << 30, DLQMaxBytes: 4 << 20, DLQMaxAge: 72 * time.Hour}
	if err := stream.EnsureStreams(t.Context(), js, cfg); err != nil {
		t.Fatal(err)
	}
	d, err := js.Stream(t.Context(), stream.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	c := d.CachedInfo().Config
	if c.MaxBytes != 4<<20 || c.MaxAge != 72*time.Hour || c.Discard != jetstream.DiscardNew {
		t.Errorf("dlq config: max bytes %d, max age %s, discard %s", c.MaxBytes, c.MaxAge, c.Discard)
	}
}

// A consumer left by an older worker with a MaxDeliver limit is updated in
// place to redeliver without limit, keeping its position: the worker counts
// deliveries itself.
func TestEnsureConsumerLiftsMaxDeliver(t *testing.T) {
	_, js := devtest.JetStream(t, devtest.NATS(t))
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	old, err := js.CreateConsumer(t.Context(), stream.EventsStream, jetstream.ConsumerConfig{
		Durable: stream.Consumer, AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 20, AckWait: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := js.Publish(t.Context(), stream.EventsSubject("acme"), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	mb, err := old.Fetch(1, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range mb.Messages() {
		if err := m.DoubleAck(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := stream.EnsureConsumer(t.Context(), js, stream.EventsStream, stream.ConsumerConfig{AckWait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxDeliver != -1 || info.NumPending != 2 || info.AckFloor.Stream != 1 {
		t.Errorf("after the update: MaxDeliver %d, %d pending, ack floor %d; want -1, 2, 1",
			info.Config.MaxDeliver, info.NumPending, info.AckFloor.Stream)
	}
}

func TestSubjects(t *testing.T) {
	if got := stream.EventsSubject("acme"); got != "sluice.events.acme" {
		t.Errorf("EventsSubject = %s", got)
	}
	if got := stream.DLQSubject("acme"); got != "sluice.dlq.acme" {
		t.Errorf("DLQSubject = %s", got)
	}
	for subject, want := range map[string]string{
		"sluice.events.acme": "acme", "sluice.events.": "", "sluice.dlq.acme": "", "acme": "",
		"sluice.events.3.acme": "acme", "sluice.events.15.a-b": "a-b", "sluice.events.x.acme": "",
		"sluice.events.3.": "", "sluice.events.3.acme.x": "",
	} {
		if got, ok := stream.TenantOf(subject); ok != (want != "") || ok && got != want {
			t.Errorf("TenantOf(%s) = %q, %v; want %q", subject, got, ok, want)
		}
	}
}

// SLUICE_DUPLICATE_WINDOW becomes the events stream's duplicate window.
func TestDuplicateWindowSetting(t *testing.T) {
	for env, want := range map[string]time.Duration{"": stream.DefaultDuplicateWindow, "30s": 30 * time.Second} {
		var s stream.Settings
		cs := config.New("test", func(k string) string {
			if k == "SLUICE_DUPLICATE_WINDOW" {
				return env
			}
			return ""
		})
		s.Declare(cs)
		if err := cs.Parse(nil, io.Discard); err != nil {
			t.Fatal(err)
		}
		if got := s.Config().EventsConfig().Duplicates; got != want {
			t.Errorf("SLUICE_DUPLICATE_WINDOW=%q: duplicates %s, want %s", env, got, want)
		}
	}
}
