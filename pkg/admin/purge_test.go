package admin_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/admin"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// dlqOf starts NATS with the streams and dead-letters one message for each
// tenant, in order; it returns the DLQ and each message's store time.
func dlqOf(t *testing.T, tenants ...string) (*admin.DLQ, jetstream.Stream, []time.Time) {
	t.Helper()
	_, js := devtest.JetStream(t, devtest.NATS(t))
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), stream.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	var times []time.Time
	for _, tenant := range tenants {
		ack, err := js.Publish(t.Context(), stream.DLQSubject(tenant), []byte(`{"msg":"x"}`+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := st.GetMsg(t.Context(), ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		times = append(times, m.Time)
	}
	dlq, err := admin.OpenDLQ(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	return dlq, st, times
}

func purge(t *testing.T, dlq *admin.DLQ, now time.Time, f admin.PurgeFilter) uint64 {
	t.Helper()
	n, err := dlq.Purge(t.Context(), now, f)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPurgeByTenantAndAge(t *testing.T) {
	dlq, st, times := dlqOf(t, "acme", "beta", "acme", "beta")
	if _, err := dlq.Purge(t.Context(), time.Now(), admin.PurgeFilter{}); !errors.Is(err, admin.ErrNoFilter) {
		t.Fatalf("no filter: %v", err)
	}
	// acme's dead letters stored before the third: the first.
	if n := purge(t, dlq, times[2].Add(time.Hour), admin.PurgeFilter{Tenant: "acme", OlderThan: time.Hour}); n != 1 {
		t.Errorf("acme older than the third: purged %d, want 1", n)
	}
	// Every dead letter stored before the fourth: beta's first, acme's second.
	if n := purge(t, dlq, times[3].Add(time.Minute), admin.PurgeFilter{OlderThan: time.Minute}); n != 2 {
		t.Errorf("older than the fourth: purged %d, want 2", n)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 || info.State.FirstSeq != 4 {
		t.Errorf("left %d from seq %d, want the fourth alone", info.State.Msgs, info.State.FirstSeq)
	}
	if n := purge(t, dlq, time.Now(), admin.PurgeFilter{Tenant: "acme"}); n != 0 {
		t.Errorf("acme again: purged %d", n)
	}
	if n := purge(t, dlq, time.Now(), admin.PurgeFilter{All: true}); n != 1 {
		t.Errorf("all: purged %d, want 1", n)
	}
}

// The age bound is found by a binary search that must step over deleted
// sequences.
func TestPurgeOlderThanWithHoles(t *testing.T) {
	tenants := make([]string, 50)
	for i := range tenants {
		tenants[i] = []string{"acme", "beta"}[i%2]
	}
	dlq, st, times := dlqOf(t, tenants...)
	for seq := uint64(10); seq <= 20; seq++ { // replayed, say
		if err := st.DeleteMsg(t.Context(), seq); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		before int // purge what was stored before message number before+1
		want   uint64
	}{{0, 0}, {5, 5}, {9, 4}, {15, 0}, {20, 0}, {36, 16}, {49, 13}} {
		n := purge(t, dlq, times[tc.before].Add(time.Hour), admin.PurgeFilter{OlderThan: time.Hour})
		if n != tc.want {
			t.Errorf("older than message %d: purged %d, want %d", tc.before+1, n, tc.want)
		}
	}
	if n := purge(t, dlq, times[49].Add(time.Hour+time.Nanosecond), admin.PurgeFilter{OlderThan: time.Hour}); n != 1 {
		t.Errorf("older than every message: purged %d, want the last one", n)
	}
}
