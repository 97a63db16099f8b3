package receipts_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/receipts"
)

// startBucket creates the receipts bucket on an embedded NATS server and
// returns it with a writer into it.
func startBucket(tb testing.TB) (jetstream.KeyValue, *receipts.Writer) {
	tb.Helper()
	_, js := devtest.JetStream(tb, devtest.NATS(tb))
	kv, err := receipts.Ensure(tb.Context(), js, time.Hour, 1)
	if err != nil {
		tb.Fatal(err)
	}
	return kv, receipts.NewWriter(js, kv)
}

// TestOutcomesMerge writes the outcomes a batch can meet, in the order a
// crash, a redelivery and a conflict split produce them, and checks the
// receipt and where its events are counted.
func TestOutcomesMerge(t *testing.T) {
	kv, w := startBucket(t)
	at := time.Date(2026, 12, 1, 14, 5, 0, 0, time.UTC)
	a, b := "raw/tenant=acme/dt=2026-12-01/hour=14/1-3.ndjson.gz", "raw/tenant=acme/dt=2026-12-01/hour=14/2-2.ndjson.gz"
	batches := []receipts.Batch{{Tenant: "acme", BatchID: "b1", Events: 2}, {Tenant: "acme", BatchID: "b2", Events: 5}, {Tenant: "acme", BatchID: "b3", Events: 1}}
	landA := receipts.Outcome{ID: receipts.ObjectOutcome(a), Key: a, At: at}

	check := func(counted []bool, err error, want ...bool) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if counted[i] != want[i] {
				t.Fatalf("counted %v, want %v", counted, want)
			}
		}
	}
	counted, err := w.Record(t.Context(), batches, landA)
	check(counted, err, true, true, true)
	// The same object again (a redelivered batch meeting its stored object):
	// still counted there, nothing added.
	counted, err = w.Record(t.Context(), batches, landA)
	check(counted, err, true, true, true)
	// b2 lands a second time in another object: listed, not counted again.
	counted, err = w.Record(t.Context(), batches[1:2], receipts.Outcome{ID: receipts.ObjectOutcome(b), Key: b, At: at.Add(time.Minute)})
	check(counted, err, false)
	// b3's message is dead-lettered after it landed: it stays landed.
	counted, err = w.Record(t.Context(), batches[2:], receipts.Outcome{ID: receipts.DeadLetterOutcome("s1", 3), Error: "boom", At: at})
	check(counted, err, false)
	// b4 is dead-lettered, twice (a DLQ copy whose terminate was lost).
	dead := receipts.Outcome{ID: receipts.DeadLetterOutcome("s1", 4), Error: "undecodable body", At: at}
	for range 2 {
		counted, err = w.Record(t.Context(), []receipts.Batch{{Tenant: "acme", BatchID: "b4", Events: 3}}, dead)
		check(counted, err, true)
	}

	r, err := receipts.Get(t.Context(), kv, "acme", "b2")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != receipts.StatusLanded || r.Events != 5 || len(r.Objects) != 2 || r.Objects[0].Key != a || r.Objects[1].Key != b ||
		r.LandedAt == nil || !r.LandedAt.Equal(at) || r.Error != "" {
		t.Errorf("b2: %+v", r)
	}
	if r, _ := receipts.Get(t.Context(), kv, "acme", "b3"); r.Status != receipts.StatusLanded || len(r.Objects) != 1 {
		t.Errorf("b3: %+v", r)
	}
	r, err = receipts.Get(t.Context(), kv, "acme", "b4")
	if err != nil || r.Status != receipts.StatusDeadLettered || r.Error != "undecodable body" || r.Events != 3 || len(r.Objects) != 0 || r.LandedAt != nil {
		t.Errorf("b4: %+v, %v", r, err)
	}
	for _, k := range [][2]string{{"beta", "b1"}, {"acme", "nope"}} {
		if _, err := receipts.Get(t.Context(), kv, k[0], k[1]); !errors.Is(err, receipts.ErrNotFound) {
			t.Errorf("%s of %s: %v, want ErrNotFound", k[1], k[0], err)
		}
	}
}

// TestCoalescedMessageReceipt: one receipt per coalesced message answers
// for each of its requests, with the request's own event count, through a
// later landing in another object too.
func TestCoalescedMessageReceipt(t *testing.T) {
	kv, w := startBucket(t)
	at := time.Date(2026, 12, 1, 14, 5, 0, 0, time.UTC)
	a, b := "raw/tenant=acme/dt=2026-12-01/hour=14/1-3.ndjson.gz", "raw/tenant=acme/dt=2026-12-01/hour=14/1-1.ndjson.gz"
	m := receipts.Batch{Tenant: "acme", BatchID: "m1", Events: 3, Requests: []int{2, 1}}
	for _, key := range []string{a, a, b} {
		if _, err := w.Record(t.Context(), []receipts.Batch{m}, receipts.Outcome{ID: receipts.ObjectOutcome(key), Key: key, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	for i, events := range m.Requests {
		id := fmt.Sprintf("m1-%d", i)
		r, err := receipts.Get(t.Context(), kv, "acme", id)
		if err != nil {
			t.Fatal(err)
		}
		if r.BatchID != id || r.Status != receipts.StatusLanded || r.Events != events || len(r.Objects) != 2 ||
			r.Objects[0] != (receipts.Object{Key: a, Events: events}) || r.Objects[1] != (receipts.Object{Key: b, Events: events}) {
			t.Errorf("%s: %+v", id, r)
		}
	}
	for _, k := range [][2]string{{"acme", "m1-2"}, {"beta", "m1-0"}, {"acme", "m2-0"}} {
		if _, err := receipts.Get(t.Context(), kv, k[0], k[1]); !errors.Is(err, receipts.ErrNotFound) {
			t.Errorf("%s of %s: %v, want ErrNotFound", k[1], k[0], err)
		}
	}
	// A request published alone has no request ids.
	if _, err := w.Record(t.Context(), []receipts.Batch{{Tenant: "acme", BatchID: "s1", Events: 1}}, receipts.Outcome{ID: receipts.ObjectOutcome(a), Key: a, At: at}); err != nil {
		t.Fatal(err)
	}
	if _, err := receipts.Get(t.Context(), kv, "acme", "s1-0"); !errors.Is(err, receipts.ErrNotFound) {
		t.Errorf("s1-0: %v, want ErrNotFound", err)
	}
}

// TestSplitHalvesAndARegather has two writers land the two halves of a
// split batch at once, then a third land all of it again in another object
// (a regathered batch that did not form the same object): each batch is
// counted in exactly one object, and every receipt lists both of its own.
func TestSplitHalvesAndARegather(t *testing.T) {
	_, js := devtest.JetStream(t, devtest.NATS(t))
	kv, err := receipts.Ensure(t.Context(), js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	var batches []receipts.Batch
	for i := range 600 {
		batches = append(batches, receipts.Batch{Tenant: "acme", BatchID: fmt.Sprintf("b%03d", i), Events: 1 + i%3})
	}
	halves := [][]receipts.Batch{batches[:300], batches[300:]}
	keys := []string{"lo", "hi", "again"}
	res := make([][]bool, 3)
	errs := make(chan error, 2)
	for i := range halves {
		go func() {
			var err error
			res[i], err = receipts.NewWriter(js, kv).Record(t.Context(), halves[i], receipts.Outcome{ID: receipts.ObjectOutcome(keys[i]), Key: keys[i], At: time.Now()})
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	res[2], err = receipts.NewWriter(js, kv).Record(t.Context(), batches, receipts.Outcome{ID: receipts.ObjectOutcome("again"), Key: "again", At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range batches {
		half := i / 300
		if !res[half][i%300] || res[2][i] {
			t.Fatalf("batch %s: counted in its half %v, again %v", b.BatchID, res[half][i%300], res[2][i])
		}
		r, err := receipts.Get(t.Context(), kv, "acme", b.BatchID)
		if err != nil || len(r.Objects) != 2 || r.Objects[0].Key != keys[half] || r.Objects[1].Key != "again" || r.Events != b.Events {
			t.Fatalf("batch %s: %+v, %v", b.BatchID, r, err)
		}
	}
}

// TestRefusedPutFailsRecord: when the stream refuses the puts (here, a
// receipt above its message size limit), Record fails and counts nothing;
// once it takes them, the same call writes every receipt.
func TestRefusedPutFailsRecord(t *testing.T) {
	_, js := devtest.JetStream(t, devtest.NATS(t))
	kv, err := receipts.Ensure(t.Context(), js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), "KV_"+receipts.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	limit := func(size int32) {
		t.Helper()
		cfg := st.CachedInfo().Config
		cfg.MaxMsgSize = size
		if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
			t.Fatal(err)
		}
	}
	var batches []receipts.Batch
	for i := range 300 {
		batches = append(batches, receipts.Batch{Tenant: "acme", BatchID: fmt.Sprintf("b%03d", i), Events: 2})
	}
	landed := receipts.Outcome{ID: receipts.ObjectOutcome("k"), Key: "k", At: time.Now()}
	w := receipts.NewWriter(js, kv)
	limit(64)
	if counted, err := w.Record(t.Context(), batches, landed); err == nil {
		t.Fatalf("puts above the size limit: counted %v, no error", counted)
	}
	limit(-1)
	counted, err := w.Record(t.Context(), batches, landed)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range batches {
		r, err := receipts.Get(t.Context(), kv, b.Tenant, b.BatchID)
		if !counted[i] || err != nil || r.Status != receipts.StatusLanded || r.Events != 2 {
			t.Fatalf("batch %s: counted %v, %+v, %v", b.BatchID, counted[i], r, err)
		}
	}
}
