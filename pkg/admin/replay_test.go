package admin_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-ingest/sluice/pkg/admin"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/receipts"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// An interrupted replay stops between two dead letters: the one it was
// replaying is in the events stream and gone from the DLQ, the rest are
// untouched.
func TestReplayInterrupted(t *testing.T) {
	_, js := devtest.JetStream(t, devtest.NATS(t))
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		m := nats.NewMsg(stream.DLQSubject("acme"))
		envelope.Meta{Tenant: "acme", BatchID: envelope.NewBatchID(), ReceivedAt: time.Now(), EventCount: 1}.SetHeaders(m.Header)
		m.Header.Set(stream.HeaderError, "S3 refused the object: EntityTooLarge")
		m.Data = []byte(`{"msg":"x"}` + "\n")
		if _, err := js.PublishMsg(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	dlq, err := admin.OpenDLQ(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	ctx, interrupt := context.WithCancel(t.Context())
	var done []uint64
	err = dlq.Replayer("").Replay(ctx, admin.Filter{}, false, 5*time.Second, func(r admin.Replayed) error {
		done = append(done, r.Seq)
		interrupt() // Ctrl-C while the first is replayed
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want the interruption", err)
	}
	if len(done) != 1 || done[0] != 1 {
		t.Errorf("replayed %v, want seq 1 alone", done)
	}
	for name, want := range map[string]uint64{stream.EventsStream: 1, stream.DLQStream: 2} {
		st, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != want {
			t.Errorf("%s holds %d messages, want %d", name, info.State.Msgs, want)
		}
	}
}

// A batch id is another tenant's when SLUICE_RECEIPTS holds a receipt of
// it for another tenant, also through the coalesced message a "M-<i>" id
// names; a receipt of the dead letter's own tenant (its dead_lettered
// one) is no objection.
func TestReplayRefusesAnotherTenantsBatchID(t *testing.T) {
	_, js := devtest.JetStream(t, devtest.NATS(t))
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	kv, err := receipts.Ensure(t.Context(), js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	w := receipts.NewWriter(js, kv)
	victimMsg, own := envelope.NewBatchID(), envelope.NewBatchID()
	for _, b := range []receipts.Batch{{Tenant: "victim", BatchID: victimMsg, Events: 2, Requests: []int{1, 1}}, {Tenant: "evil", BatchID: own, Events: 2, Requests: []int{1, 1}}} {
		if _, err := w.Record(t.Context(), []receipts.Batch{b}, receipts.Outcome{ID: receipts.DeadLetterOutcome("x", 1), Error: "x", At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	two := []envelope.Request{{Events: 1, ReceivedAt: now}, {Events: 1, ReceivedAt: now}}
	ownCoalesced := envelope.Coalesce("evil", two)
	ownCoalesced.BatchID = own
	for _, tc := range []struct {
		meta    envelope.Meta
		refused bool
	}{
		{envelope.Meta{Tenant: "evil", BatchID: envelope.RequestBatchID(victimMsg, 1), ReceivedAt: now, EventCount: 1}, true},
		{envelope.Meta{Tenant: "evil", BatchID: victimMsg, ReceivedAt: now, EventCount: 1}, true},
		{ownCoalesced, false},
		{envelope.Meta{Tenant: "evil", BatchID: envelope.NewBatchID(), ReceivedAt: now, EventCount: 1}, false},
	} {
		m := nats.NewMsg(stream.DLQSubject("evil"))
		tc.meta.SetHeaders(m.Header)
		m.Data = []byte("{}\n{}\n")
		if _, err := js.PublishMsg(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	dlq, err := admin.OpenDLQ(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	var refused []uint64
	err = dlq.Replayer("").Replay(t.Context(), admin.Filter{}, true, 5*time.Second, func(r admin.Replayed) error {
		switch {
		case errors.Is(r.Skipped, admin.ErrRefused):
			refused = append(refused, r.Seq)
		case r.Skipped != nil:
			t.Errorf("seq %d skipped: %v", r.Seq, r.Skipped)
		case r.Msg.Subject != stream.EventsSubject("evil"):
			t.Errorf("seq %d would be published on %s", r.Seq, r.Msg.Subject)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 2 || refused[0] != 1 || refused[1] != 2 {
		t.Errorf("refused %v, want seqs 1 and 2", refused)
	}
}
