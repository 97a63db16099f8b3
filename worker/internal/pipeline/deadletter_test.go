package pipeline

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// TestFullDLQKeepsTheMessage: a message on its last allowed delivery while
// SLUICE_DLQ is full stays in the events stream, deliverable, and is tried
// again and again; once the DLQ has room it ends there. At no moment is it
// in neither place.
func TestFullDLQKeepsTheMessage(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{AckWait: 5 * time.Second})
	if err := stream.EnsureStreams(t.Context(), h.js, stream.Config{DLQMaxBytes: 16 << 10}); err != nil {
		t.Fatal(err)
	}
	dlq, err := h.js.Stream(t.Context(), stream.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	filler := 0
	for ; filler < 100; filler++ {
		if _, err := h.js.Publish(t.Context(), stream.DLQSubject("filler"), make([]byte, 1024)); err != nil {
			break // full
		}
	}
	if filler == 0 || filler == 100 {
		t.Fatalf("%d filler dead letters stored: the DLQ bound does not hold", filler)
	}

	id := h.publish("acme", hourAgo, 1, 1, 10)
	h.fetchAndNak(2) // the pipeline gets its third and last allowed delivery

	// Watch the message from now on: in the events stream and pending for
	// the consumer (delivered or deliverable), or else in the DLQ. The
	// events stream is looked at first: the dead letter is published
	// before the message is terminated.
	inDLQ := func() bool {
		_, err := dlq.GetLastMsgForSubject(t.Context(), stream.DLQSubject("acme"))
		return err == nil
	}
	var lost atomic.Int64
	ctx, stopWatch := context.WithCancel(t.Context())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for ctx.Err() == nil {
			info, err := h.cons.Info(ctx)
			if err != nil {
				continue
			}
			if info.NumPending+uint64(info.NumAckPending) == 0 && !inDLQ() {
				lost.Add(1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 200 * time.Millisecond})
	cfg.MaxDeliver = 3
	cfg.DeadLetterRetry = 300 * time.Millisecond
	h.start(cfg)
	wctx, stopDepth := context.WithCancel(t.Context())
	depth := make(chan error, 1)
	go func() { depth <- WatchDLQ(wctx, h.js, 100*time.Millisecond, cfg.Metrics) }()
	t.Cleanup(func() { stopDepth(); <-depth })

	devtest.Eventually(t, 15*time.Second, 20*time.Millisecond, func() bool {
		return testutil.ToFloat64(cfg.Metrics.deadLettersRefused) >= 3
	}, "the refused dead letter was not tried again")
	if n := h.streamMsgs(); n != 1 {
		t.Fatalf("events stream holds %d messages while the DLQ is full, want the refused one", n)
	}
	devtest.Eventually(t, 5*time.Second, 20*time.Millisecond, func() bool {
		return testutil.ToFloat64(cfg.Metrics.dlqMessages) == float64(filler)
	}, "DLQ depth metric does not show the full DLQ")

	if err := dlq.Purge(t.Context(), jetstream.WithPurgeSubject(stream.DLQSubject("filler"))); err != nil {
		t.Fatal(err)
	}
	devtest.Eventually(t, 15*time.Second, 20*time.Millisecond, func() bool { return inDLQ() && h.streamMsgs() == 0 },
		"the message did not reach the DLQ once it had room")
	stopWatch()
	<-watched
	if n := lost.Load(); n > 0 {
		t.Errorf("the message was in neither the events stream's pending set nor the DLQ at %d samples", n)
	}
	m, err := dlq.GetLastMsgForSubject(t.Context(), stream.DLQSubject("acme"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(stream.HeaderBatchID) != id || !strings.Contains(m.Header.Get(stream.HeaderError), "MaxDeliver") {
		t.Errorf("dead letter headers %v", m.Header)
	}
	if objs := h.objects(); len(objs) != 0 {
		t.Errorf("%d objects stored", len(objs))
	}
}

// TestForeignTenantHeaderGoesToDLQ: a message published on tenant a's
// subject whose Sluice-Tenant header says b is dead-lettered (under a, the
// subject's tenant) with the reason, and nothing is written into b's
// partition; the good messages of both tenants land.
func TestForeignTenantHeaderGoesToDLQ(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	h.publish("a", hourAgo, 1, 1, 10)
	h.publish("b", hourAgo, 2, 1, 10)
	forged := nats.NewMsg(stream.EventsSubject("a"))
	meta := envelope.Meta{Tenant: "b", BatchID: envelope.NewBatchID(), ReceivedAt: hourAgo, EventCount: 1}
	meta.SetHeaders(forged.Header)
	forged.Data = []byte(`{"msg":3}` + "\n")
	if _, err := h.js.PublishMsg(t.Context(), forged); err != nil {
		t.Fatal(err)
	}

	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 200 * time.Millisecond})
	h.start(cfg)
	dl := h.dlq(1)
	if dl[0].Subject != stream.DLQSubject("a") || dl[0].Header.Get(stream.HeaderBatchID) != meta.BatchID ||
		!strings.Contains(dl[0].Header.Get(stream.HeaderError), stream.HeaderTenant) {
		t.Errorf("dead letter on %s, headers %v; want on %s with the reason", dl[0].Subject, dl[0].Header, stream.DLQSubject("a"))
	}
	objs := h.waitEvents(2, 15*time.Second)
	ids := checkObjects(t, objs)
	for id := range ids {
		if strings.HasPrefix(id, meta.BatchID) {
			t.Errorf("forged event %s stored", id)
		}
	}
	if len(ids) != 2 || len(objs) != 2 {
		t.Errorf("%d objects with %d events, want one per tenant with its own event", len(objs), len(ids))
	}
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return h.streamMsgs() == 0 }, "stream not empty")
}

// TestPoisonWithExpectationsGoesToDLQ: a poison message published with
// Nats-Expected-Stream (true of SLUICE_EVENTS, false of the DLQ) still
// reaches the DLQ, and leaves the events stream.
func TestPoisonWithExpectationsGoesToDLQ(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	poison := nats.NewMsg(stream.EventsSubject("acme"))
	meta := envelope.Meta{Tenant: "acme", BatchID: envelope.NewBatchID(), ReceivedAt: hourAgo, EventCount: 1}
	meta.SetHeaders(poison.Header)
	poison.Data = []byte("not json\n")
	if _, err := h.js.PublishMsg(t.Context(), poison, jetstream.WithExpectStream(stream.EventsStream)); err != nil {
		t.Fatal(err)
	}
	h.start(h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 200 * time.Millisecond}))
	dl := h.dlq(1)
	if dl[0].Header.Get(stream.HeaderBatchID) != meta.BatchID || dl[0].Header.Get("Nats-Expected-Stream") != "" {
		t.Errorf("dead letter headers %v", dl[0].Header)
	}
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return h.streamMsgs() == 0 }, "stream not empty")
}

// TestDeadLettersOfTwoIncarnations: poison messages with the same stream
// sequence in two incarnations of the stream (recreated within the DLQ's
// duplicate window) are two dead letters, not one taken for the other.
func TestDeadLettersOfTwoIncarnations(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	publishPoison := func() {
		m := nats.NewMsg(stream.EventsSubject("acme"))
		meta := envelope.Meta{Tenant: "acme", BatchID: envelope.NewBatchID(), ReceivedAt: hourAgo, EventCount: 1}
		meta.SetHeaders(m.Header)
		m.Data = []byte("not json\n")
		if _, err := h.js.PublishMsg(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	lim := object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 200 * time.Millisecond}
	publishPoison()
	r := h.start(h.config(lim))
	h.dlq(1)
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	h.recreateStream()
	publishPoison()
	h.start(h.config(lim))
	h.dlq(2)
}

// TestInvalidUTF8GoesToDLQ: an event that json.Valid accepts but that is
// not valid UTF-8 (a stray byte inside a string, as a non-gateway
// publisher may send) is dead-lettered with the reason, and never stored;
// the valid message beside it lands.
func TestInvalidUTF8GoesToDLQ(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	h.publish("acme", hourAgo, 1, 1, 10)
	bad := nats.NewMsg(stream.EventsSubject("acme"))
	meta := envelope.Meta{Tenant: "acme", BatchID: envelope.NewBatchID(), ReceivedAt: hourAgo, EventCount: 2}
	meta.SetHeaders(bad.Header)
	bad.Data = []byte(`{"msg":"caf` + "\xc3\xa9" + `"}` + "\n" + `{"msg":"caf` + "\xe9" + `"}` + "\n") // é in UTF-8, then in Latin-1
	if _, err := h.js.PublishMsg(t.Context(), bad); err != nil {
		t.Fatal(err)
	}

	h.start(h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 200 * time.Millisecond}))
	dl := h.dlq(1)
	if got := dl[0].Header.Get(stream.HeaderError); got != "undecodable body: event 1 is not valid UTF-8" || dl[0].Header.Get(stream.HeaderBatchID) != meta.BatchID {
		t.Errorf("dead letter %s with reason %q", dl[0].Header.Get(stream.HeaderBatchID), got)
	}
	ids := checkObjects(t, h.waitEvents(1, 15*time.Second))
	for id := range ids {
		if strings.HasPrefix(id, meta.BatchID) {
			t.Errorf("event %s of the invalid body stored", id)
		}
	}
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return h.streamMsgs() == 0 }, "stream not empty")
}
