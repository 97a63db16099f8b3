package pipeline

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/objkey"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// streamTag is the events stream's incarnation now.
func (h *harness) streamTag() string {
	h.t.Helper()
	st, err := h.js.Stream(h.t.Context(), stream.EventsStream)
	if err != nil {
		h.t.Fatal(err)
	}
	return objkey.StreamTag(st.CachedInfo().Created)
}

// recreateStream deletes the events stream and creates it and the consumer
// again, as a restarted worker or gateway does after `nats stream rm`.
func (h *harness) recreateStream() {
	h.t.Helper()
	if err := h.js.DeleteStream(h.t.Context(), stream.EventsStream); err != nil {
		h.t.Fatal(err)
	}
	if err := stream.EnsureStreams(h.t.Context(), h.js, stream.Config{}); err != nil {
		h.t.Fatal(err)
	}
	cons, err := stream.EnsureConsumer(h.t.Context(), h.js, stream.EventsStream, h.ccfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.cons = cons
}

// TestRecreatedStreamLosesNothing: a stream deleted and recreated numbers
// its messages from 1 again, so new objects have the very sequences and
// counts of stored objects. Every new event lands, under keys of their own,
// none acknowledged on the strength of an old object, and no new message
// is regathered into an old object (some come redelivered, so they are
// looked up).
func TestRecreatedStreamLosesNothing(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	lim := object.Limits{MaxBytes: 1 << 30, MaxEvents: 10, MaxAge: time.Hour} // one 10-event request per object
	const requests = 20
	for i := range requests {
		h.publish("acme", hourAgo, i, 10, 10)
	}
	old := h.start(h.config(lim))
	h.waitEvents(requests*10, 15*time.Second)
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return h.streamMsgs() == 0 }, "first incarnation not acked")
	if err := old.stop(t); err != nil {
		t.Fatal(err)
	}
	before := h.streamTag()
	h.recreateStream()
	after := h.streamTag()
	if before == after {
		t.Fatalf("recreated stream has the same creation time %s", before)
	}
	for i := range requests {
		h.publish("acme", hourAgo, requests+i, 10, 10)
	}
	// Half the new messages come to the worker redelivered.
	mb, err := h.cons.Fetch(requests/2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range mb.Messages() {
		_ = m.Nak()
	}
	cfg := h.config(lim)
	h.start(cfg)
	h.waitEvents(2*requests*10, 15*time.Second)
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return h.streamMsgs() == 0 }, "second incarnation not acked")
	objs := h.objects()
	ids := checkObjects(t, objs)
	if len(ids) != 2*requests*10 {
		t.Errorf("%d distinct events stored, want %d", len(ids), 2*requests*10)
	}
	storedOnce(t, ids)
	tagged := 0
	for _, o := range objs {
		if k, _ := objkey.Parse(o.Key); k.Stream == after {
			tagged++
		}
	}
	if len(objs) != 2*requests || tagged != requests {
		t.Errorf("%d objects, %d keyed with the new incarnation; want %d and %d", len(objs), tagged, 2*requests, requests)
	}
	if got := testutil.ToFloat64(cfg.Metrics.cuts.WithLabelValues(string(object.ReasonRegather))); got != 0 {
		t.Errorf("%v objects regathered into objects of the old incarnation", got)
	}
}

// TestIncarnationFollowsARecreatedStream: a delivery sequence that goes
// back (the consumer was recreated) makes the worker read the stream's
// creation time again.
func TestIncarnationFollowsARecreatedStream(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	in := &incarnation{js: h.js, stream: stream.EventsStream}
	delivery := func(n uint64) *jetstream.MsgMetadata {
		return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Consumer: n, Stream: n}}
	}
	first, err := in.of(t.Context(), delivery(1))
	if err != nil || first != h.streamTag() {
		t.Fatalf("incarnation %q, %v; want %q", first, err, h.streamTag())
	}
	if got, _ := in.of(t.Context(), delivery(2)); got != first {
		t.Fatalf("incarnation changed to %q without the stream changing", got)
	}
	h.recreateStream()
	got, err := in.of(t.Context(), delivery(1))
	if err != nil || got != h.streamTag() || got == first {
		t.Errorf("after the stream was recreated: incarnation %q, %v; want %q", got, err, h.streamTag())
	}
}

// TestAcksNeverReachARecreatedStream: the server takes an ack by stream
// sequence alone. A worker still storing the messages of a deleted stream
// when the stream is recreated must not ack them: the acks would settle
// the new messages with the same sequences, held by another worker.
func TestAcksNeverReachARecreatedStream(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	const msgs = 5
	cfg, r := h.startHolding(msgs)
	h.s3.down.Store(true) // the final upload waits for S3
	h.recreateStream()
	for i := range msgs {
		h.publish("acme", hourAgo, msgs+i, 1, 10)
	}
	// Another worker holds the new messages, same sequences, not yet stored.
	mb, err := h.cons.Fetch(msgs, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for range mb.Messages() {
		held++
	}
	if held != msgs {
		t.Fatalf("holding %d new messages, want %d", held, msgs)
	}
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return testutil.ToFloat64(cfg.Metrics.uploadRetries) >= 1 },
		"the old messages' upload not retried")
	h.s3.down.Store(false)
	if err := r.stop(t); err == nil {
		t.Error("Run went on after its consumer was deleted")
	}
	if ids := checkObjects(t, h.objects()); len(ids) != msgs {
		t.Errorf("%d old events stored, want %d", len(ids), msgs)
	}
	if got := h.streamMsgs(); got != msgs {
		t.Errorf("the new stream holds %d messages, want the %d held by the other worker", got, msgs)
	}
}

// TestIncarnationAfterTheServerLostItsStore: a single-replica server that
// comes back without its store has a new stream whose delivery sequences
// may well be above the last one the worker saw; the reconnect alone makes
// the worker read the stream's creation time again.
func TestIncarnationAfterTheServerLostItsStore(t *testing.T) {
	dir := t.TempDir()
	n, err := devstack.StartNATS(devstack.NATSOptions{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Shutdown)
	nc, js := devtest.JetStream(t, n)
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	in := &incarnation{js: js, stream: stream.EventsStream}
	delivery := &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Consumer: 1, Stream: 1}}
	first, err := in.of(t.Context(), delivery)
	if err != nil {
		t.Fatal(err)
	}
	n.Shutdown()
	if err := os.RemoveAll(filepath.Join(dir, "jetstream")); err != nil {
		t.Fatal(err)
	}
	if err := n.Restart(); err != nil {
		t.Fatal(err)
	}
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, nc.IsConnected, "client not reconnected")
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	want := objkey.StreamTag(st.CachedInfo().Created)
	delivery.Sequence.Consumer = 1000 // the new consumer has delivered more meanwhile
	got, err := in.of(t.Context(), delivery)
	if err != nil || got != want || got == first {
		t.Errorf("after the store was lost: incarnation %q, %v; want %q (was %q)", got, err, want, first)
	}
}
