package ledger_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/ledger"
)

// TestCountsAddUpOnce adds counts with and without ids, the same id twice,
// and through a tally, and reads them back per hour.
func TestCountsAddUpOnce(t *testing.T) {
	_, js := devtest.JetStream(t, devtest.NATS(t))
	old := ledger.Config(1)
	old.MaxAge = 0 // as created by a version that kept counters forever
	if _, err := js.CreateStream(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	if err := ledger.Ensure(t.Context(), js, 1); err != nil {
		t.Fatal(err)
	}
	if err := ledger.Ensure(t.Context(), js, 1); err != nil { // a second process
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), ledger.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.MaxAge; got != ledger.MaxAge {
		t.Fatalf("counter stream MaxAge %s, want %s: an existing stream is not updated in place", got, ledger.MaxAge)
	}
	h := time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)
	for _, inc := range []struct {
		kind ledger.Kind
		hour time.Time
		n    int64
		id   string
	}{
		{ledger.Landed, h, 10, "landed-x"},
		{ledger.Landed, h, 10, "landed-x"}, // the same object again
		{ledger.Landed, h, 4, "landed-y"},
		{ledger.Dead, h, 2, "dead-z"},
		{ledger.Landed, h.Add(time.Hour), 7, "landed-w"},
	} {
		if err := ledger.Add(t.Context(), js, inc.kind, "acme", inc.hour, inc.n, inc.id); err != nil {
			t.Fatal(err)
		}
	}
	tally := ledger.NewTally(js, slog.New(slog.DiscardHandler))
	for range 16 {
		tally.Add(ledger.Accepted, "acme", h.Add(59*time.Minute), 1)
	}
	tally.Add(ledger.Accepted, "acme", h.Add(61*time.Minute), 7)
	tally.Add(ledger.Accepted, "beta", h, 100)
	if left := tally.Flush(t.Context()); left != 0 {
		t.Fatalf("%d increments not flushed", left)
	}
	if left := tally.Flush(t.Context()); left != 0 { // nothing pending: nothing added
		t.Fatalf("%d increments not flushed", left)
	}
	got, err := ledger.Read(t.Context(), js, "acme", h.Add(-time.Hour), h.Add(90*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := []ledger.Counts{
		{Hour: h.Add(-time.Hour)},
		{Hour: h, Accepted: 16, Landed: 14, Dead: 2},
		{Hour: h.Add(time.Hour), Accepted: 7, Landed: 7},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if !got[i].Hour.Equal(want[i].Hour) || got[i].Accepted != want[i].Accepted || got[i].Landed != want[i].Landed || got[i].Dead != want[i].Dead {
			t.Errorf("hour %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestTallyKeepsWhatFailed: counts whose flush failed (no counter stream
// yet, as before the first process ensured it) are kept and flushed later,
// once.
func TestTallyKeepsWhatFailed(t *testing.T) {
	_, js := devtest.JetStream(t, devtest.NATS(t))
	tally := ledger.NewTally(js, slog.New(slog.DiscardHandler))
	h := time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)
	tally.Add(ledger.Accepted, "acme", h, 5)
	if left := tally.Flush(t.Context()); left != 1 {
		t.Fatalf("%d increments kept, want 1", left)
	}
	tally.Add(ledger.Accepted, "acme", h, 2)
	if err := ledger.Ensure(t.Context(), js, 1); err != nil {
		t.Fatal(err)
	}
	if left := tally.Flush(t.Context()); left != 0 {
		t.Fatalf("%d increments not flushed", left)
	}
	tally.Flush(t.Context())
	c, err := ledger.Read(t.Context(), js, "acme", h, h)
	if err != nil || c[0].Accepted != 7 {
		t.Fatalf("counts %+v, %v; want 7 accepted", c, err)
	}
}
