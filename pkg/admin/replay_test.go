package admin_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-ingest/sluice/pkg/admin"
	"github.com/sluice-ingest/sluice/pkg/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
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
