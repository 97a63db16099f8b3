package object

import (
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/pkg/envelope"
)

var t0 = time.Date(2026, 11, 25, 10, 59, 0, 0, time.UTC)

func item(tenant string, seq uint64, at time.Time, events int, body string) Item {
	return Item{Meta: envelope.Meta{Tenant: tenant, BatchID: "b", ReceivedAt: at, EventCount: events}, Seq: seq, Body: []byte(body)}
}

func TestCutOnEventsAndBytes(t *testing.T) {
	b := NewOpen(Limits{MaxBytes: 10, MaxEvents: 3, MaxAge: time.Hour})
	if got := b.Add(item("a", 1, t0, 2, "x"), t0); got != nil {
		t.Fatal("cut too early")
	}
	got := b.Add(item("a", 2, t0, 1, "x"), t0)
	if got == nil || got.Events != 3 || got.FirstSeq != 1 || got.LastSeq != 2 {
		t.Fatalf("event limit: got %+v", got)
	}
	got = b.Add(item("a", 3, t0, 1, "0123456789"), t0)
	if got == nil || got.Bytes != 10 {
		t.Fatalf("byte limit: got %+v", got)
	}
	if b.Len() != 0 {
		t.Errorf("open objects left: %d", b.Len())
	}
}

func TestPartitionsByTenantAndHour(t *testing.T) {
	b := NewOpen(Limits{MaxBytes: 1 << 20, MaxEvents: 100, MaxAge: time.Hour})
	b.Add(item("a", 1, t0, 1, "x"), t0)
	b.Add(item("b", 2, t0, 1, "x"), t0)
	b.Add(item("a", 3, t0.Add(2*time.Minute), 1, "x"), t0) // next hour
	b.Add(item("a", 4, t0.Add(30*time.Second), 1, "x"), t0)
	all := b.All(ReasonShutdown)
	if len(all) != 3 {
		t.Fatalf("got %d objects, want 3", len(all))
	}
	for _, bt := range all {
		if bt.Tenant == "a" && bt.Hour.Hour() == 10 && (bt.FirstSeq != 1 || bt.LastSeq != 4) {
			t.Errorf("tenant a hour 10: seqs %d-%d, want 1-4", bt.FirstSeq, bt.LastSeq)
		}
	}
}

func TestAgeCut(t *testing.T) {
	b := NewOpen(Limits{MaxBytes: 1 << 20, MaxEvents: 100, MaxAge: 5 * time.Second})
	if _, ok := b.NextDue(t0); ok {
		t.Error("NextDue with nothing open")
	}
	b.Add(item("a", 1, t0, 1, "x"), t0)
	b.Add(item("b", 2, t0, 1, "x"), t0.Add(2*time.Second))
	if d, _ := b.NextDue(t0.Add(time.Second)); d != 4*time.Second {
		t.Errorf("NextDue = %s, want 4s", d)
	}
	if due := b.Due(t0.Add(5 * time.Second)); len(due) != 1 || due[0].Tenant != "a" {
		t.Errorf("Due = %v, want tenant a only", due)
	}
	if due := b.Due(t0.Add(7 * time.Second)); len(due) != 1 || due[0].Tenant != "b" {
		t.Errorf("Due = %v, want tenant b", due)
	}
}

func TestRegatherALandedObject(t *testing.T) {
	b := NewOpen(Limits{MaxBytes: 1 << 20, MaxEvents: 100, MaxAge: time.Hour})
	landed := &Landed{Key: "k3-9", FirstSeq: 3, LastSeq: 9, Events: 3}
	fresh := item("a", 10, t0, 1, "x")
	if b.Add(fresh, t0) != nil {
		t.Fatal("fresh message cut an object")
	}
	for i, seq := range []uint64{9, 3, 5} {
		it := item("a", seq, t0, 1, "x")
		it.Landed = landed
		got := b.Add(it, t0)
		if i < 2 && got != nil {
			t.Fatalf("cut after %d of 3 messages", i+1)
		}
		if i == 2 && (got == nil || got.Reason != ReasonRegather || got.FirstSeq != 3 || got.LastSeq != 9 || len(got.Items) != 3) {
			t.Fatalf("regathered object: %+v", got)
		}
	}
	if b.Len() != 1 {
		t.Errorf("open objects %d, want the fresh one", b.Len())
	}
}

// TestRegatherObjectsWithTheSameFirstSequence: after a split, the
// objects 10-11 and 10-20 share a first sequence; their redelivered
// messages are gathered apart, each cut when its own object is
// whole again.
func TestRegatherObjectsWithTheSameFirstSequence(t *testing.T) {
	b := NewOpen(Limits{MaxBytes: 1 << 20, MaxEvents: 100, MaxAge: time.Hour})
	small := &Landed{Key: "k10-11", FirstSeq: 10, LastSeq: 11, Events: 2}
	big := &Landed{Key: "k10-20", FirstSeq: 10, LastSeq: 20, Events: 3}
	add := func(seq uint64, l *Landed) *Object {
		it := item("a", seq, t0, 1, "x")
		it.Landed = l
		return b.Add(it, t0)
	}
	if got := add(10, big); got != nil {
		t.Fatalf("cut after one message: %+v", got)
	}
	if got := add(11, small); got != nil {
		t.Fatalf("cut %d-%d with one message of 10-11", got.FirstSeq, got.LastSeq)
	}
	if got := add(15, big); got != nil {
		t.Fatalf("cut %d-%d before 10-20 is whole", got.FirstSeq, got.LastSeq)
	}
	if got := add(20, big); got == nil || got.Regather != big.Key || len(got.Items) != 3 || got.FirstSeq != 10 || got.LastSeq != 20 {
		t.Fatalf("10-20 regathered object: %+v", got)
	}
	if b.Len() != 1 {
		t.Errorf("open objects %d, want 10-11's", b.Len())
	}
}

func TestIncarnationsNeverShareAnObject(t *testing.T) {
	b := NewOpen(Limits{MaxBytes: 1 << 20, MaxEvents: 100, MaxAge: time.Hour})
	for i, stream := range []string{"old", "new", "old"} {
		it := item("a", uint64(i+1), t0, 1, "x")
		it.Stream = stream
		b.Add(it, t0)
	}
	all := b.All(ReasonShutdown)
	if len(all) != 2 {
		t.Fatalf("%d objects, want one per incarnation", len(all))
	}
	for _, bt := range all {
		for _, it := range bt.Items {
			if it.Stream != bt.Stream {
				t.Errorf("message of %s in an object of %s", it.Stream, bt.Stream)
			}
		}
	}
}
