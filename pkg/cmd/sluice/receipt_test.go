package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/ledger"
	"github.com/sluice-ingest/sluice/pkg/receipts"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// proof adds the receipts bucket and the counter stream, as the workers
// create them.
func (c cluster) proof(t *testing.T) *receipts.Writer {
	t.Helper()
	kv, err := receipts.Ensure(t.Context(), c.js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.Ensure(t.Context(), c.js, 1); err != nil {
		t.Fatal(err)
	}
	return receipts.NewWriter(c.js, kv)
}

// publish puts r in the events stream as the gateway does, and returns its
// sequence.
func (c cluster) publish(t *testing.T, r request) uint64 {
	t.Helper()
	m := nats.NewMsg(stream.EventsSubject(r.meta.Tenant))
	r.meta.SetHeaders(m.Header)
	m.Data = r.body
	ack, err := c.js.PublishMsg(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func TestReceipt(t *testing.T) {
	c := newCluster(t)
	w := c.proof(t)
	landed, dead, waiting := newRequest("acme", 3), newRequest("acme", 2), newRequest("acme", 4)
	key := "raw/tenant=acme/dt=2026-12-01/hour=14/00000000000000000001-00000000000000000009.ndjson.gz"
	if _, err := w.Record(t.Context(), []receipts.Batch{{Tenant: "acme", BatchID: landed.meta.BatchID, Events: 3}},
		receipts.Outcome{ID: receipts.ObjectOutcome(key), Key: key, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Record(t.Context(), []receipts.Batch{{Tenant: "acme", BatchID: dead.meta.BatchID, Events: 2}},
		receipts.Outcome{ID: receipts.DeadLetterOutcome("x", 7), Error: "undecodable body: 1 events, header Sluice-Event-Count says 2", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	c.publish(t, newRequest("beta", 1))
	seq := c.publish(t, waiting)
	c.publish(t, newRequest("acme", 1))

	out := c.mustSluice(t, "receipt", landed.meta.BatchID)
	if !strings.HasPrefix(out, "batch "+landed.meta.BatchID+" of tenant acme: landed\n") || !strings.Contains(out, "object     "+key+" (3 events)") {
		t.Errorf("landed:\n%s", out)
	}
	var got struct {
		Tenant, Status, Error string
		Events                int
		Objects               []receipts.Object
	}
	if err := json.Unmarshal([]byte(c.mustSluice(t, "receipt", "--tenant", "acme", dead.meta.BatchID, "--json")), &got); err != nil {
		t.Fatal(err)
	}
	if got.Tenant != "acme" || got.Status != "dead_lettered" || got.Events != 2 || !strings.HasPrefix(got.Error, "undecodable body") || got.Objects == nil {
		t.Errorf("dead letter: %+v", got)
	}
	out = c.mustSluice(t, "receipt", waiting.meta.BatchID, "--tenant", "acme")
	if !strings.Contains(out, ": pending\n") || !strings.Contains(out, "seq "+itoa(seq)) {
		t.Errorf("pending:\n%s", out)
	}
	for _, args := range [][]string{
		{"receipt", landed.meta.BatchID, "--tenant", "beta"}, // another tenant's
		{"receipt", waiting.meta.BatchID, "--tenant", "beta"},
		{"receipt", "nosuchbatch"},
	} {
		if out, err := c.sluice(t, args...); err == nil || !strings.Contains(err.Error(), "no receipt for batch") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
	if _, err := c.sluice(t, "receipt", "a.b"); err == nil || !strings.Contains(err.Error(), "not a batch id") {
		t.Errorf("a.b: %v", err)
	}
}

func itoa(n uint64) string { b, _ := json.Marshal(n); return string(b) }

func TestReconcile(t *testing.T) {
	c := newCluster(t)
	c.proof(t)
	now := time.Now().UTC().Truncate(time.Hour)
	add := func(kind ledger.Kind, hour time.Time, n int64) {
		t.Helper()
		if err := ledger.Add(t.Context(), c.js, kind, "acme", hour, n, ""); err != nil {
			t.Fatal(err)
		}
	}
	h3, h2 := now.Add(-3*time.Hour), now.Add(-2*time.Hour)
	add(ledger.Accepted, h3, 100)
	add(ledger.Landed, h3, 97)
	add(ledger.Dead, h3, 3)
	add(ledger.Accepted, h2, 50)
	add(ledger.Landed, h2, 40) // 10 missing
	add(ledger.Accepted, now, 5)
	add(ledger.Landed, now, 2)
	add(ledger.Accepted, h3, 1) // another tenant's do not count
	if err := ledger.Add(t.Context(), c.js, ledger.Landed, "beta", h2, 10, ""); err != nil {
		t.Fatal(err)
	}
	add(ledger.Landed, h3, 1)

	from := h3.Format("2006-01-02T15")
	// No grace: the hour before this one is closed however few minutes of
	// this one have passed.
	out, err := c.sluice(t, "reconcile", "--tenant", "acme", "--from", from, "--grace", "0s")
	if err == nil || !strings.Contains(err.Error(), "1 closed hour(s) of tenant acme differ") {
		t.Fatalf("err = %v\n%s", err, out)
	}
	lines := devtest.Lines([]byte(out))
	want := [][]string{
		{h3.Format("2006-01-02T15:04Z"), "101", "98", "3", "0", "ok"},
		{h2.Format("2006-01-02T15:04Z"), "50", "40", "0", "10", "DIFFERS"},
		{now.Add(-time.Hour).Format("2006-01-02T15:04Z"), "0", "0", "0", "0", "ok"},
		{now.Format("2006-01-02T15:04Z"), "5", "2", "0", "3", "open"},
	}
	if len(lines) != len(want)+1 || !strings.HasPrefix(lines[0], "HOUR (UTC)") {
		t.Fatalf("output:\n%s", out)
	}
	for i, w := range want {
		if f := strings.Fields(lines[i+1]); strings.Join(f, " ") != strings.Join(w, " ") {
			t.Errorf("line %d = %q, want %q", i+1, lines[i+1], strings.Join(w, " "))
		}
	}

	// A message of the tenant received in h2 still waits in the stream:
	// h2 and the hours after it are open, not differing.
	late := newRequest("acme", 10)
	late.meta.ReceivedAt = h2.Add(30 * time.Minute)
	c.publish(t, late)
	out = c.mustSluice(t, "reconcile", "--tenant", "acme", "--from", from, "--grace", "0s", "--json")
	var states []string
	for _, l := range devtest.Lines([]byte(out)) {
		var h struct{ State string }
		if err := json.Unmarshal([]byte(l), &h); err != nil {
			t.Fatal(err)
		}
		states = append(states, h.State)
	}
	if strings.Join(states, " ") != "ok open open open" {
		t.Errorf("states %v:\n%s", states, out)
	}

	for _, args := range [][]string{
		{"reconcile", "--from", from},
		{"reconcile", "--tenant", "acme"},
		{"reconcile", "--tenant", "acme", "--from", "yesterday"},
		{"reconcile", "--tenant", "acme", "--from", now.Format("2006-01-02T15"), "--to", h3.Format("2006-01-02T15")},
	} {
		if _, err := c.sluice(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
