package manifest

import (
	"strconv"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
)

// BenchmarkTrackerSeen is what Seen costs a fetched message: one of an
// hour already seen from its consumer (no call to NATS), and the first of
// a tenant-hour from a consumer (one put in SLUICE_HOURS, on an embedded
// server over loopback).
func BenchmarkTrackerSeen(b *testing.B) {
	_, js := devtest.JetStream(b, devtest.NATS(b))
	hours, err := OpenHours(b.Context(), js, time.Minute, 1)
	if err != nil {
		b.Fatal(err)
	}
	tr := NewTracker(TrackerConfig{Hours: hours, Grace: time.Minute, Log: discard()})
	at := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	b.Run("again", func(b *testing.B) {
		m := envelope.Meta{Tenant: "acme", ReceivedAt: at}
		tr.Seen(m, "sluice-workers-p00", 1)
		for b.Loop() {
			tr.Seen(m, "sluice-workers-p00", 2)
		}
	})
	b.Run("first", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			tr.Seen(envelope.Meta{Tenant: "t" + strconv.Itoa(i), ReceivedAt: at}, "sluice-workers-p00", uint64(i))
		}
		if tr.unrecorded {
			b.Fatal("a record was refused")
		}
	})
}
