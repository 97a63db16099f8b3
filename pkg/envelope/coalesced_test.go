package envelope

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-ingest/sluice/pkg/stream"
)

var (
	at0 = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	at1 = time.Date(2026, 1, 2, 3, 59, 59, 0, time.UTC)
)

func TestCoalescedHeadersRoundTrip(t *testing.T) {
	m := Coalesce("acme", []Request{{Events: 2, ReceivedAt: at0}, {Events: 1, ReceivedAt: at1}})
	if m.EventCount != 3 || !m.ReceivedAt.Equal(at0) || !m.Coalesced() {
		t.Fatalf("Coalesce = %+v", m)
	}
	h := nats.Header{}
	m.SetHeaders(h)
	if got, want := h.Get(stream.HeaderRequests), "2@2026-01-02T03:04:05.000000006Z 1@2026-01-02T03:59:59Z"; got != want {
		t.Errorf("%s = %q, want %q", stream.HeaderRequests, got, want)
	}
	// A worker that predates coalescing needs Sluice-Batch-Id: without it,
	// it dead-letters the message instead of storing it as one request.
	for _, name := range []string{stream.HeaderBatchID, stream.HeaderReceivedAt, stream.HeaderEventCount, stream.HeaderMsgID} {
		if v := h.Get(name); v != "" {
			t.Errorf("coalesced message has %s %q", name, v)
		}
	}
	got, err := MetaOf(stream.EventsSubject("acme"), h)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("got %+v, want %+v", got, m)
	}
}

// Every event keeps its own request's batch id, index and received_at.
func TestEachRequestEvent(t *testing.T) {
	m := Coalesce("acme", []Request{{Events: 2, ReceivedAt: at0}, {Events: 1, ReceivedAt: at1}})
	var out []byte
	err := m.EachRequestEvent([]byte("{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n"), func(req Meta, i int, ev []byte) error {
		out = AppendLine(out, req, i, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	id := m.BatchID
	want := `{"id":"` + id + `-0-0","tenant":"acme","received_at":"2026-01-02T03:04:05.000000006Z","data":{"a":1}}` + "\n" +
		`{"id":"` + id + `-0-1","tenant":"acme","received_at":"2026-01-02T03:04:05.000000006Z","data":{"b":2}}` + "\n" +
		`{"id":"` + id + `-1-0","tenant":"acme","received_at":"2026-01-02T03:59:59Z","data":{"c":3}}` + "\n"
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	err = m.EachRequestEvent([]byte("{}\n{}\n{}\n{}\n"), func(Meta, int, []byte) error { return nil })
	if !errors.Is(err, ErrBadMeta) {
		t.Errorf("more events than the requests count: err = %v, want ErrBadMeta", err)
	}
}

func TestCoalescedFromHeadersRejects(t *testing.T) {
	good := func() nats.Header {
		h := nats.Header{}
		Coalesce("t", []Request{{Events: 1, ReceivedAt: at0}, {Events: 1, ReceivedAt: at1}}).SetHeaders(h)
		return h
	}
	for name, mut := range map[string]func(nats.Header){
		"one request":     func(h nats.Header) { h.Set(stream.HeaderRequests, "1@2026-01-02T03:04:05Z") },
		"zero events":     func(h nats.Header) { h.Set(stream.HeaderRequests, "0@2026-01-02T03:04:05Z 1@2026-01-02T03:04:05Z") },
		"no at":           func(h nats.Header) { h.Set(stream.HeaderRequests, "1 1@2026-01-02T03:04:05Z") },
		"bad time":        func(h nats.Header) { h.Set(stream.HeaderRequests, "1@yesterday 1@2026-01-02T03:04:05Z") },
		"empty entry":     func(h nats.Header) { h.Set(stream.HeaderRequests, "1@2026-01-02T03:04:05Z  1@2026-01-02T03:04:05Z") },
		"trailing space":  func(h nats.Header) { h.Set(stream.HeaderRequests, "1@2026-01-02T03:04:05Z 1@2026-01-02T03:04:05Z ") },
		"two hours":       func(h nats.Header) { h.Set(stream.HeaderRequests, "1@2026-01-02T03:59:59Z 1@2026-01-02T04:00:00Z") },
		"no requests":     func(h nats.Header) { h.Del(stream.HeaderRequests) },
		"bad message id":  func(h nats.Header) { h.Set(stream.HeaderMessageID, "UPPER") },
		"derived id":      func(h nats.Header) { h.Set(stream.HeaderMessageID, "abc-1") },
		"with a batch id": func(h nats.Header) { h.Set(stream.HeaderBatchID, "abc") },
		"too many": func(h nats.Header) {
			h.Set(stream.HeaderRequests, strings.TrimSpace(strings.Repeat("1@2026-01-02T03:04:05Z ", MaxRequests+1)))
		},
	} {
		h := good()
		mut(h)
		if _, err := MetaFromHeaders(h); !errors.Is(err, ErrBadMeta) {
			t.Errorf("%s: err = %v, want ErrBadMeta", name, err)
		}
	}
	if _, err := MetaFromHeaders(good()); err != nil {
		t.Errorf("good: %v", err)
	}
	replayed := good()
	replayed.Set(stream.HeaderMsgID, "replay-1")
	if _, err := MetaFromHeaders(replayed); err != nil {
		t.Errorf("replayed from the dead-letter stream (Nats-Msg-Id): %v", err)
	}
}

func TestSplitBatchID(t *testing.T) {
	for _, tc := range []struct {
		id  string
		msg string
		i   int
		ok  bool
	}{
		{RequestBatchID("abc", 0), "abc", 0, true},
		{RequestBatchID("abc", 17), "abc", 17, true},
		{"abc", "", 0, false},
		{"abc-", "", 0, false},
		{"-1", "", 0, false},
		{"abc-01", "", 0, false},
		{"abc-x", "", 0, false},
		{"a-b-1", "", 0, false},
		{"abc-256", "", 0, false},
	} {
		msg, i, ok := SplitBatchID(tc.id)
		if msg != tc.msg || i != tc.i || ok != tc.ok {
			t.Errorf("SplitBatchID(%q) = %q, %d, %v; want %q, %d, %v", tc.id, msg, i, ok, tc.msg, tc.i, tc.ok)
		}
	}
}
