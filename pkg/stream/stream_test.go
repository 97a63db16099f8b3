package stream_test

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/config"
	"github.com/sluice-ingest/sluice/pkg/devstack/devtest"
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
		c.MaxBytes != 1<<30 || c.Duplicates != stream.DefaultDuplicateWindow || len(c.Subjects) != 1 || c.Subjects[0] != "sluice.events.>" {
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

	cons, err := stream.EnsureConsumer(t.Context(), js, "", stream.ConsumerConfig{MaxDeliver: 5})
	if err != nil {
		t.Fatal(err)
	}
	ci := cons.CachedInfo().Config
	if ci.Durable != stream.Consumer || ci.AckPolicy != jetstream.AckExplicitPolicy || ci.MaxDeliver != 5 {
		t.Errorf("consumer config %+v", ci)
	}
}

func TestSubjects(t *testing.T) {
	if got := stream.EventsSubject("acme"); got != "sluice.events.acme" {
		t.Errorf("EventsSubject = %s", got)
	}
	if got := stream.DLQSubject("acme"); got != "sluice.dlq.acme" {
		t.Errorf("DLQSubject = %s", got)
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
