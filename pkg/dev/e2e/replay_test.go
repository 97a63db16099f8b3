package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/admin"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/receipts"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// TestReplayStaysInItsTenant: a publisher allowed on sluice.events.evil
// sends a message whose headers name the tenant victim and carry the batch
// id of the victim's landed request, and one of its own tenant with that
// batch id and a body the worker refuses. The real worker dead-letters
// both on sluice.dlq.evil; replaying them refuses both, leaves them in the
// DLQ and publishes nothing, so nothing more lands under tenant=victim and
// the victim's receipt is untouched.
func TestReplayStaysInItsTenant(t *testing.T) {
	st := startStack(t, "key-v victim\n", nil)
	_, js := devtest.JetStream(t, st.nats)
	a, err := post(t, &http.Client{Timeout: 10 * time.Second}, st.ingest, "key-v", 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	var kv jetstream.KeyValue
	var landed jetstream.KeyValueEntry
	devtest.Eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		if kv == nil {
			kv, _ = js.KeyValue(t.Context(), receipts.Bucket)
			return false
		}
		r, err := receipts.Get(t.Context(), kv, "victim", a.batchID)
		if err != nil || r.Status != receipts.StatusLanded {
			return false
		}
		landed, err = kv.Get(t.Context(), receipts.Key("victim", a.batchID))
		return err == nil
	}, "the victim's request never landed")
	victimObjects := func() []string {
		var keys []string
		for _, o := range devtest.MustReadObjects(t, st.s3.Client(), devstack.S3Bucket, "raw/tenant=victim/") {
			keys = append(keys, o.Key)
		}
		return keys
	}
	before := victimObjects()

	forged := nats.NewMsg(stream.EventsSubject("evil"))
	envelope.Meta{Tenant: "victim", BatchID: a.batchID, ReceivedAt: time.Now().UTC(), EventCount: 1}.SetHeaders(forged.Header)
	forged.Data = []byte(`{"forged":true}` + "\n")
	copied := nats.NewMsg(stream.EventsSubject("evil"))
	envelope.Meta{Tenant: "evil", BatchID: a.batchID, ReceivedAt: time.Now().UTC(), EventCount: 2}.SetHeaders(copied.Header)
	copied.Data = []byte(`{"copied":true}` + "\n") // one event; its header says 2
	for _, m := range []*nats.Msg{forged, copied} {
		if _, err := js.PublishMsg(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	msgs := func(name string) uint64 {
		s, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	devtest.Eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		return msgs(stream.DLQStream) == 2 && msgs(stream.EventsStream) == 0
	}, "the worker did not dead-letter both")

	dlq, err := admin.OpenDLQ(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	var refused []string
	err = dlq.Replayer("").Replay(t.Context(), admin.Filter{}, false, 5*time.Second, func(r admin.Replayed) error {
		if r.Subject != stream.DLQSubject("evil") || !errors.Is(r.Skipped, admin.ErrRefused) {
			t.Errorf("dead letter %d on %s: skipped %v, published %v", r.Seq, r.Subject, r.Skipped, r.Ack)
		}
		refused = append(refused, fmt.Sprint(r.Skipped))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("refused: %q", refused)
	if len(refused) != 2 {
		t.Errorf("%d dead letters replayed or refused, want 2 refused", len(refused))
	}
	if n, d := msgs(stream.EventsStream), msgs(stream.DLQStream); n != 0 || d != 2 {
		t.Errorf("after the replay: %d messages in %s, %d in %s; want none published, both kept", n, stream.EventsStream, d, stream.DLQStream)
	}
	if after := victimObjects(); !slices.Equal(after, before) {
		t.Errorf("the victim's objects are %v, were %v", after, before)
	}
	after, err := kv.Get(t.Context(), receipts.Key("victim", a.batchID))
	if err != nil || after.Revision() != landed.Revision() {
		t.Errorf("the victim's receipt changed: %v %v", after, err)
	}
}
