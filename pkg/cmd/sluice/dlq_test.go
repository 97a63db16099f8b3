package main

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/admin"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/receipts"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

func TestDLQList(t *testing.T) {
	c := newCluster(t)
	a1, a2, b1 := newRequest("acme", 2), newRequest("acme", 1), newRequest("beta", 3)
	c.deadLetter(t, a1, "body line 2 is not a JSON object", 1)
	c.deadLetter(t, b1, "S3 refused the object: EntityTooLarge", 5)
	c.deadLetter(t, a2, "delivered 5 times without being stored (MaxDeliver reached)", 5)

	lines := devtest.Lines([]byte(c.mustSluice(t, "dlq", "list")))
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "SEQ ") {
		t.Fatalf("list:\n%s", strings.Join(lines, "\n"))
	}
	for i, want := range []struct {
		r          request
		deliveries string
		err        string
	}{{a1, "1", "body line 2 is not a JSON object"}, {b1, "5", "EntityTooLarge"}, {a2, "5", "(MaxDeliver reached)"}} {
		f := strings.Fields(lines[i+1])
		if f[0] != []string{"1", "2", "3"}[i] || f[2] != want.r.meta.Tenant || f[3] != want.r.meta.BatchID || f[4] != want.deliveries ||
			f[5] != []string{"2", "3", "1"}[i] || !strings.HasSuffix(lines[i+1], want.err) {
			t.Errorf("line %d = %q", i+1, lines[i+1])
		}
	}

	lines = devtest.Lines([]byte(c.mustSluice(t, "dlq", "list", "--tenant", "acme", "--json")))
	if len(lines) != 2 {
		t.Fatalf("acme as JSON:\n%s", strings.Join(lines, "\n"))
	}
	for i, r := range []request{a1, a2} {
		var got map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatalf("line %q: %v", lines[i], err)
		}
		for _, k := range []string{"seq", "tenant", "batch_id", "error", "deliveries", "events", "time", "received_at"} {
			if _, ok := got[k]; !ok {
				t.Errorf("line %q lacks %q", lines[i], k)
			}
		}
		if got["tenant"] != "acme" || got["batch_id"] != r.meta.BatchID || got["seq"] != []float64{1, 3}[i] || got["error"] == "" {
			t.Errorf("line %d = %v", i, got)
		}
	}

	lines = devtest.Lines([]byte(c.mustSluice(t, "dlq", "list", "--limit", "1", "--json")))
	if len(lines) != 1 || !strings.Contains(lines[0], a1.meta.BatchID) {
		t.Errorf("--limit 1: %v", lines)
	}
	if out := c.mustSluice(t, "dlq", "list", "--tenant", "gamma"); len(devtest.Lines([]byte(out))) != 1 {
		t.Errorf("a tenant without dead letters:\n%s", out)
	}
	// Reading left nothing behind.
	if n := c.info(t, stream.DLQStream).State.Consumers; n != 0 {
		t.Errorf("the DLQ has %d consumers after listing", n)
	}
}

// eventsMsg is the message at seq in the events stream.
func (c cluster) eventsMsg(t *testing.T, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	st, err := c.js.Stream(t.Context(), stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(t.Context(), seq)
	if err != nil {
		t.Fatalf("events seq %d: %v", seq, err)
	}
	return m
}

// checkReplayed fails unless m is r, as the gateway published it, replayed.
func checkReplayed(t *testing.T, m *jetstream.RawStreamMsg, r request) {
	t.Helper()
	h := r.meta
	// Stored in the tenant's partition: sluice.events.<p>.<tenant>.
	if tenant, ok := stream.TenantOf(m.Subject); !ok || tenant != h.Tenant || string(m.Data) != string(r.body) {
		t.Errorf("replayed on %s with body %q", m.Subject, m.Data)
	}
	for k, want := range map[string]string{
		stream.HeaderTenant:     h.Tenant,
		stream.HeaderBatchID:    h.BatchID,
		stream.HeaderReceivedAt: h.ReceivedAt.Format(time.RFC3339Nano),
		stream.HeaderEventCount: strconv.Itoa(h.EventCount),
		stream.HeaderError:      "",
		stream.HeaderDeliveries: "",
	} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("replayed %s = %q, want %q", k, got, want)
		}
	}
	if !strings.HasPrefix(m.Header.Get(stream.HeaderMsgID), "sluice-replay-") {
		t.Errorf("replayed Nats-Msg-Id %q", m.Header.Get(stream.HeaderMsgID))
	}
	// Nothing else: the worker copies every header into a dead letter, so a
	// stored Nats-Expected-Stream would make a second dead-lettering fail.
	for k := range m.Header {
		switch k {
		case stream.HeaderTenant, stream.HeaderBatchID, stream.HeaderReceivedAt, stream.HeaderEventCount, stream.HeaderMsgID:
		default:
			t.Errorf("replayed message carries header %s: %q", k, m.Header[k])
		}
	}
}

func TestDLQReplay(t *testing.T) {
	c := newCluster(t)
	a1, b1, a2 := newRequest("acme", 2), newRequest("beta", 1), newRequest("acme", 3)
	c.deadLetter(t, a1, "S3 refused the object: EntityTooLarge", 1)
	c.deadLetter(t, b1, "S3 refused the object: EntityTooLarge", 1)
	c.deadLetter(t, a2, "S3 refused the object: EntityTooLarge", 1)

	out := c.mustSluice(t, "dlq", "replay", "--tenant", "acme", "--dry-run")
	if !strings.Contains(out, "would replay seq=1 tenant=acme batch_id="+a1.meta.BatchID+" events=2 to sluice.events.acme with ") ||
		!strings.HasSuffix(out, "would replay 2, skipped 0, refused 0 (they stay in SLUICE_DLQ)\n") {
		t.Errorf("dry run:\n%s", out)
	}
	if ev, dl := c.info(t, stream.EventsStream).State, c.info(t, stream.DLQStream).State; ev.Msgs != 0 || dl.Msgs != 3 {
		t.Fatalf("after the dry run: %d events, %d dead letters", ev.Msgs, dl.Msgs)
	}

	out = c.mustSluice(t, "dlq", "replay", "--tenant", "acme")
	if !strings.Contains(out, "replayed seq=3 tenant=acme batch_id="+a2.meta.BatchID+" events=3 to sluice.events.acme -> SLUICE_EVENTS seq=2\n") ||
		!strings.HasSuffix(out, "replayed 2, skipped 0, refused 0 (they stay in SLUICE_DLQ)\n") {
		t.Errorf("replay:\n%s", out)
	}
	if n := c.info(t, stream.EventsStream).State.Msgs; n != 2 {
		t.Fatalf("events stream holds %d messages after replaying 2", n)
	}
	checkReplayed(t, c.eventsMsg(t, 1), a1)
	checkReplayed(t, c.eventsMsg(t, 2), a2)
	dl := c.info(t, stream.DLQStream).State
	if dl.Msgs != 1 || dl.FirstSeq != 2 {
		t.Errorf("DLQ after replaying acme: %d messages from seq %d, want beta's alone (seq 2)", dl.Msgs, dl.FirstSeq)
	}

	out = c.mustSluice(t, "dlq", "replay", "--limit", "5")
	if !strings.HasSuffix(out, "replayed 1, skipped 0, refused 0 (they stay in SLUICE_DLQ)\n") {
		t.Errorf("replay of the rest:\n%s", out)
	}
	checkReplayed(t, c.eventsMsg(t, 3), b1)
	if n := c.info(t, stream.DLQStream).State.Msgs; n != 0 {
		t.Errorf("DLQ holds %d after replaying everything", n)
	}
}

// A replay that stopped between a PubAck and the delete that follows it
// (killed, or NATS lost) is run again: nothing is published twice.
func TestDLQReplayAgainAfterInterruption(t *testing.T) {
	c := newCluster(t)
	reqs := []request{newRequest("acme", 1), newRequest("acme", 2), newRequest("acme", 3)}
	for _, r := range reqs {
		c.deadLetter(t, r, "S3 refused the object: EntityTooLarge", 1)
	}
	// The first run published the first two and died before deleting them.
	dlq, err := admin.OpenDLQ(t.Context(), c.js)
	if err != nil {
		t.Fatal(err)
	}
	rp := dlq.Replayer("")
	err = dlq.Scan(t.Context(), admin.Filter{Limit: 2}, func(dl admin.DeadLetter) error {
		_, err := rp.Publish(t.Context(), dl)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	out := c.mustSluice(t, "dlq", "replay")
	if strings.Count(out, "(already there: published by an earlier replay)") != 2 || !strings.HasSuffix(out, "replayed 3, skipped 0, refused 0 (they stay in SLUICE_DLQ)\n") {
		t.Errorf("second run:\n%s", out)
	}
	if n := c.info(t, stream.EventsStream).State.Msgs; n != 3 {
		t.Fatalf("events stream holds %d messages for 3 dead letters", n)
	}
	for i, r := range reqs {
		checkReplayed(t, c.eventsMsg(t, uint64(i+1)), r)
	}
	if n := c.info(t, stream.DLQStream).State.Msgs; n != 0 {
		t.Errorf("DLQ holds %d after the second run", n)
	}
	// A third run finds nothing to do.
	if out := c.mustSluice(t, "dlq", "replay"); out != "replayed 0, skipped 0, refused 0 (they stay in SLUICE_DLQ)\n" {
		t.Errorf("third run:\n%s", out)
	}
}

// A dead letter whose headers could never be stored stays where it is.
func TestDLQReplaySkipsUnstorable(t *testing.T) {
	c := newCluster(t)
	bad := newRequest("acme", 1)
	bad.meta.EventCount = 0 // SetHeaders writes Sluice-Event-Count: 0
	c.deadLetter(t, bad, "bad message metadata", 1)
	good := newRequest("acme", 1)
	c.deadLetter(t, good, "S3 refused the object: EntityTooLarge", 1)

	out := c.mustSluice(t, "dlq", "replay")
	if !strings.Contains(out, "skipped seq=1 tenant=acme batch_id="+bad.meta.BatchID+" events=0: not replayable: bad message metadata: Sluice-Event-Count \"0\"\n") ||
		!strings.HasSuffix(out, "replayed 1, skipped 1, refused 0 (they stay in SLUICE_DLQ)\n") {
		t.Errorf("replay:\n%s", out)
	}
	if ev, dl := c.info(t, stream.EventsStream).State, c.info(t, stream.DLQStream).State; ev.Msgs != 1 || dl.Msgs != 1 || dl.FirstSeq != 1 {
		t.Errorf("after replay: %d events, %d dead letters from seq %d", ev.Msgs, dl.Msgs, dl.FirstSeq)
	}
}

func TestDLQPurge(t *testing.T) {
	c := newCluster(t)
	for _, tenant := range []string{"acme", "beta", "acme", "gamma"} {
		c.deadLetter(t, newRequest(tenant, 1), "S3 refused the object: EntityTooLarge", 1)
	}
	if _, err := c.sluice(t, "dlq", "purge"); !errors.Is(err, admin.ErrNoFilter) {
		t.Errorf("purge without a filter: err = %v", err)
	}
	if out := c.mustSluice(t, "dlq", "purge", "--older-than", "1h"); out != "purged 0 dead letters\n" {
		t.Errorf("--older-than 1h: %q", out)
	}
	if out := c.mustSluice(t, "dlq", "purge", "--tenant", "acme"); out != "purged 2 dead letters\n" {
		t.Errorf("--tenant acme: %q", out)
	}
	if dl := c.info(t, stream.DLQStream).State; dl.Msgs != 2 {
		t.Errorf("after purging acme: %d dead letters", dl.Msgs)
	}
	if out := c.mustSluice(t, "dlq", "purge", "--all"); out != "purged 2 dead letters\n" {
		t.Errorf("--all: %q", out)
	}
	if dl := c.info(t, stream.DLQStream).State; dl.Msgs != 0 {
		t.Errorf("after --all: %d dead letters", dl.Msgs)
	}
}

// A dead letter of tenant evil is replayed as evil's, or not at all: one
// whose headers name the victim, or that carries the victim's batch id,
// is refused and stays in the DLQ, the victim's receipt is untouched, and
// nothing is published for the victim. The dry run prints what is
// published, subject and headers, exactly.
func TestDLQReplayRefusesAnotherTenant(t *testing.T) {
	c := newCluster(t)
	w := c.proof(t)
	victim := newRequest("victim", 2)
	key := "raw/tenant=victim/dt=2026-12-01/hour=14/00000000000000000001-00000000000000000001.ndjson.gz"
	if _, err := w.Record(t.Context(), []receipts.Batch{{Tenant: "victim", BatchID: victim.meta.BatchID, Events: 2}},
		receipts.Outcome{ID: receipts.ObjectOutcome(key), Key: key, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	kv, err := c.js.KeyValue(t.Context(), receipts.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	before, err := kv.Get(t.Context(), receipts.Key("victim", victim.meta.BatchID))
	if err != nil {
		t.Fatal(err)
	}

	// Published on sluice.events.evil with Sluice-Tenant: victim (and the
	// victim's batch id), dead-lettered by the worker on sluice.dlq.evil.
	forged := newRequest("victim", 1)
	forged.meta.BatchID = victim.meta.BatchID
	c.deadLetterOf(t, "evil", forged, "bad message metadata: Sluice-Tenant \"victim\" disagrees with the subject sluice.events.evil", 1)
	// Evil's own tenant, the victim's batch id.
	copied := newRequest("evil", 1)
	copied.meta.BatchID = victim.meta.BatchID
	c.deadLetterOf(t, "evil", copied, "undecodable body: 2 events, header Sluice-Event-Count says 1", 1)
	// A coalesced message naming the victim.
	coalesced := request{meta: envelope.Coalesce("victim", []envelope.Request{{Events: 1, ReceivedAt: time.Now()}, {Events: 1, ReceivedAt: time.Now()}}),
		body: []byte(`{"a":1}` + "\n" + `{"a":2}` + "\n")}
	c.deadLetterOf(t, "evil", coalesced, "S3 refused the object: EntityTooLarge", 1)
	own := newRequest("evil", 1)
	own.meta.ReceivedAt = time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)
	ownSeq := c.deadLetterOf(t, "evil", own, "S3 refused the object: EntityTooLarge", 1)

	refusals := "refused seq=1 tenant=evil batch_id=" + victim.meta.BatchID + " events=1: another tenant's: its Sluice-Tenant \"victim\" is not the tenant of its subject sluice.dlq.evil\n" +
		"refused seq=2 tenant=evil batch_id=" + victim.meta.BatchID + " events=1: another tenant's: its batch id " + victim.meta.BatchID +
		" is tenant victim's (SLUICE_RECEIPTS holds its receipt victim." + victim.meta.BatchID + ")\n" +
		"refused seq=3 tenant=evil batch_id=" + coalesced.meta.BatchID + " events=2: another tenant's: its Sluice-Tenant \"victim\" is not the tenant of its subject sluice.dlq.evil\n"
	dlq, err := admin.OpenDLQ(t.Context(), c.js)
	if err != nil {
		t.Fatal(err)
	}
	msgID := dlq.Replayer("").MsgID(admin.DeadLetter{Seq: ownSeq})
	want := refusals +
		"would replay seq=4 tenant=evil batch_id=" + own.meta.BatchID + " events=1 to sluice.events.evil with Nats-Msg-Id=" + msgID +
		" Sluice-Batch-Id=" + own.meta.BatchID + " Sluice-Event-Count=1 Sluice-Received-At=2026-12-01T14:00:00Z Sluice-Tenant=evil\n" +
		"would replay 1, skipped 0, refused 3 (they stay in SLUICE_DLQ)\n"
	if out := c.mustSluice(t, "dlq", "replay", "--dry-run"); out != want {
		t.Errorf("dry run:\n%s\nwant:\n%s", out, want)
	}

	want = refusals +
		"replayed seq=4 tenant=evil batch_id=" + own.meta.BatchID + " events=1 to sluice.events.evil -> SLUICE_EVENTS seq=1\n" +
		"replayed 1, skipped 0, refused 3 (they stay in SLUICE_DLQ)\n"
	if out := c.mustSluice(t, "dlq", "replay"); out != want {
		t.Errorf("replay:\n%s\nwant:\n%s", out, want)
	}
	if ev := c.info(t, stream.EventsStream).State; ev.Msgs != 1 {
		t.Fatalf("events stream holds %d messages, want evil's own alone", ev.Msgs)
	}
	checkReplayed(t, c.eventsMsg(t, 1), own)
	if dl := c.info(t, stream.DLQStream).State; dl.Msgs != 3 || dl.FirstSeq != 1 || dl.LastSeq != 4 {
		t.Errorf("DLQ holds %d from seq %d to %d, want the 3 refused", dl.Msgs, dl.FirstSeq, dl.LastSeq)
	}
	after, err := kv.Get(t.Context(), receipts.Key("victim", victim.meta.BatchID))
	if err != nil {
		t.Fatal(err)
	}
	if after.Revision() != before.Revision() || string(after.Value()) != string(before.Value()) {
		t.Errorf("the victim's receipt changed: %s, was %s", after.Value(), before.Value())
	}
}
