package pipeline

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// headerBytes is the size of h as NATS sends it.
func headerBytes(h nats.Header) int {
	n := len("NATS/1.0\r\n") + len("\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": ") + len(v) + len("\r\n")
		}
	}
	return n
}

// TestMessageNearMaxPayloadIsFetched: the server counts a message's
// subject and ack reply against a fetch's byte limit, so a message whose
// headers and body come close to max_payload is delivered only to a fetch
// with room beyond max_payload. With the budget's room under two such
// messages, it must still be fetched and stored.
func TestMessageNearMaxPayloadIsFetched(t *testing.T) {
	h := newHarness(t, stream.ConsumerConfig{})
	maxPayload := int(h.nc.MaxPayload())
	m := nats.NewMsg(stream.EventsSubject("acme"))
	metaAt(hourAgo, 1).SetHeaders(m.Header)
	const frame = `{"p":""}` + "\n"
	m.Data = []byte(`{"p":"` + strings.Repeat("x", maxPayload-headerBytes(m.Header)-len(frame)-8) + `"}` + "\n")
	if _, err := h.js.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1, MaxAge: time.Hour})
	cfg.MaxInflightBytes = int64(maxPayload) // room for one message, not two
	h.start(cfg)
	objs := h.waitEvents(1, 15*time.Second)
	if ids := checkObjects(t, objs); len(ids) != 1 {
		t.Errorf("%d events stored, want 1", len(ids))
	}
}
