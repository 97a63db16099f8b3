package admin_test

import (
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/pkg/admin"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/ledger"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// TestMismatched counts the closed tenant-hours of every tenant whose
// counts do not add up, and nothing of the hour still open.
func TestMismatched(t *testing.T) {
	_, js := devtest.JetStream(t, devtest.NATS(t))
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	if err := ledger.Ensure(t.Context(), js, 1); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	hour := now.Truncate(time.Hour)
	add := func(kind ledger.Kind, tenant string, h time.Time, n int64) {
		t.Helper()
		if err := ledger.Add(t.Context(), js, kind, tenant, h, n, ""); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		t.Helper()
		n, err := admin.Mismatched(t.Context(), js, stream.EventsStream, 6, now, 0)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	add(ledger.Accepted, "acme", hour.Add(-3*time.Hour), 100)
	add(ledger.Landed, "acme", hour.Add(-3*time.Hour), 97)
	add(ledger.Dead, "acme", hour.Add(-3*time.Hour), 3)
	add(ledger.Accepted, "acme", hour, 5) // the open hour
	if n := count(); n != 0 {
		t.Fatalf("%d mismatched hours, want 0", n)
	}
	add(ledger.Accepted, "beta", hour.Add(-2*time.Hour), 50)
	add(ledger.Landed, "beta", hour.Add(-2*time.Hour), 40)
	add(ledger.Landed, "acme", hour.Add(-5*time.Hour), 1)
	if n := count(); n != 2 {
		t.Fatalf("%d mismatched hours, want 2 (beta two hours ago, acme five)", n)
	}
}
