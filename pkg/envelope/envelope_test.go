package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-ingest/sluice/pkg/stream"
)

func TestHeadersRoundTrip(t *testing.T) {
	m := Meta{Tenant: "acme", BatchID: NewBatchID(), ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), EventCount: 3}
	h := nats.Header{}
	m.SetHeaders(h)
	if got := h.Get(stream.HeaderMsgID); got != "" {
		t.Errorf("Nats-Msg-Id = %q without an idempotency key, want none", got)
	}
	idem := m
	idem.Idempotent = true
	hi := nats.Header{}
	idem.SetHeaders(hi)
	if hi.Get(stream.HeaderMsgID) != m.BatchID {
		t.Errorf("Nats-Msg-Id = %q, want batch id %q", hi.Get(stream.HeaderMsgID), m.BatchID)
	}
	got, err := MetaFromHeaders(h)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("got %+v, want %+v", got, m)
	}
}

// The tenant of a message is its subject's: a header naming another one is
// refused.
func TestMetaOfChecksTheSubjectsTenant(t *testing.T) {
	h := nats.Header{}
	Meta{Tenant: "b", BatchID: "x", ReceivedAt: time.Now(), EventCount: 1}.SetHeaders(h)
	if m, err := MetaOf(stream.EventsSubject("b"), h); err != nil || m.Tenant != "b" {
		t.Errorf("same tenant: %+v, %v", m, err)
	}
	for _, subject := range []string{stream.EventsSubject("a"), stream.EventsSubject("b.c"), "b"} {
		if _, err := MetaOf(subject, h); !errors.Is(err, ErrBadMeta) || !strings.Contains(err.Error(), stream.HeaderTenant) {
			t.Errorf("subject %s, header tenant b: err = %v, want ErrBadMeta naming %s", subject, err, stream.HeaderTenant)
		}
	}
}

func TestMetaFromHeadersRejects(t *testing.T) {
	good := func() nats.Header {
		h := nats.Header{}
		Meta{Tenant: "t", BatchID: "b", ReceivedAt: time.Now(), EventCount: 1}.SetHeaders(h)
		return h
	}
	for name, mut := range map[string]func(nats.Header){
		"no tenant":   func(h nats.Header) { h.Del(stream.HeaderTenant) },
		"bad tenant":  func(h nats.Header) { h.Set(stream.HeaderTenant, "A\"B") },
		"no batch":    func(h nats.Header) { h.Del(stream.HeaderBatchID) },
		"quote batch": func(h nats.Header) { h.Set(stream.HeaderBatchID, `x"y`) },
		"bad time":    func(h nats.Header) { h.Set(stream.HeaderReceivedAt, "yesterday") },
		"zero count":  func(h nats.Header) { h.Set(stream.HeaderEventCount, "0") },
		"no count":    func(h nats.Header) { h.Del(stream.HeaderEventCount) },
	} {
		h := good()
		mut(h)
		if _, err := MetaFromHeaders(h); !errors.Is(err, ErrBadMeta) {
			t.Errorf("%s: err = %v, want ErrBadMeta", name, err)
		}
	}
}

func TestBatchIDFor(t *testing.T) {
	a, b := BatchIDFor("t1", "k"), BatchIDFor("t2", "k")
	if a == b {
		t.Error("same key for two tenants gives the same batch id")
	}
	if a != BatchIDFor("t1", "k") {
		t.Error("batch id not stable")
	}
	if x, y := NewBatchID(), NewBatchID(); x == y || !ValidBatchID(x) {
		t.Errorf("random batch ids %q and %q: want two different valid ids", x, y)
	}
}

func TestValidTenant(t *testing.T) {
	for s, want := range map[string]bool{
		"acme": true, "a_b-9": true, strings.Repeat("a", 64): true,
		"": false, strings.Repeat("a", 65): false, "Acme": false, "a b": false, "a.b": false, "é": false, "a\"": false,
	} {
		if got := ValidTenant(s); got != want {
			t.Errorf("ValidTenant(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestAppendLine(t *testing.T) {
	m := Meta{Tenant: "acme", BatchID: "abc", ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), EventCount: 2}
	var out []byte
	err := EachEvent([]byte("{\"a\":1}\n\n{\"b\":[2]}\n"), func(i int, ev []byte) error {
		out = AppendLine(out, m, i, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"abc-0","tenant":"acme","received_at":"2026-01-02T03:04:05Z","data":{"a":1}}` + "\n" +
		`{"id":"abc-1","tenant":"acme","received_at":"2026-01-02T03:04:05Z","data":{"b":[2]}}` + "\n"
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	var v map[string]any
	if err := json.Unmarshal(out[:bytes.IndexByte(out, '\n')], &v); err != nil {
		t.Errorf("line is not JSON: %v", err)
	}
}
