package envelope

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-ingest/sluice/pkg/stream"
)

// A coalesced message holds the events of several requests (never one) of one
// tenant, one after the other (docs/stream.md): headers Sluice-Tenant,
// Sluice-Message-Id (its id M) and Sluice-Requests, "<events>@<received_at>"
// per request; request i's batch id is "M-<i>" (RequestBatchID). It has no
// Sluice-Batch-Id, so a reader unaware of Sluice-Requests refuses it
// (docs/decisions.md, A coalesced message carries no Sluice-Batch-Id).

// MaxRequests is the most requests a coalesced message may hold.
const MaxRequests = 256

// RequestHeaderBytes is the most a request adds to Sluice-Requests.
const RequestHeaderBytes = len("2147483647@2006-01-02T15:04:05.999999999Z ")

// Request is one request of a coalesced message.
type Request struct {
	Events     int
	ReceivedAt time.Time
}

// Coalesced reports whether m is the metadata of a coalesced message.
func (m Meta) Coalesced() bool { return m.Requests != nil }

// RequestBatchID is the batch id of request number i of the coalesced
// message messageID.
func RequestBatchID(messageID string, i int) string {
	return messageID + "-" + strconv.Itoa(i)
}

// SplitBatchID undoes RequestBatchID: ok is false for a batch id of a
// request published alone (those hold no '-').
func SplitBatchID(batchID string) (messageID string, i int, ok bool) {
	j := strings.LastIndexByte(batchID, '-')
	if j <= 0 || j == len(batchID)-1 {
		return "", 0, false
	}
	messageID, num := batchID[:j], batchID[j+1:]
	if strings.IndexByte(messageID, '-') >= 0 || (num[0] == '0' && len(num) > 1) {
		return "", 0, false
	}
	i, err := strconv.Atoi(num)
	if err != nil || i < 0 || i >= MaxRequests {
		return "", 0, false
	}
	return messageID, i, true
}

// Request returns the metadata of request number i of m (m itself when m
// is not coalesced).
func (m Meta) Request(i int) Meta {
	if !m.Coalesced() {
		return m
	}
	r := m.Requests[i]
	return Meta{Tenant: m.Tenant, BatchID: RequestBatchID(m.BatchID, i), ReceivedAt: r.ReceivedAt, EventCount: r.Events}
}

// RequestEvents returns the event count of every request of m, or nil
// when m is not coalesced.
func (m Meta) RequestEvents() []int {
	if !m.Coalesced() {
		return nil
	}
	n := make([]int, len(m.Requests))
	for i, r := range m.Requests {
		n[i] = r.Events
	}
	return n
}

// EachRequestEvent calls fn for every event of the NDJSON body of the
// message described by m, with its request's metadata (Request) and its
// zero-based index in that request. The body must hold m.EventCount events.
func (m Meta) EachRequestEvent(body []byte, fn func(req Meta, index int, event []byte) error) error {
	if !m.Coalesced() {
		return EachEvent(body, func(i int, ev []byte) error { return fn(m, i, ev) })
	}
	r, start := 0, 0
	req := m.Request(0)
	return EachEvent(body, func(i int, ev []byte) error {
		for i-start >= req.EventCount {
			if r+1 >= len(m.Requests) {
				return fmt.Errorf("%w: more events than %s counts", ErrBadMeta, stream.HeaderRequests)
			}
			start += req.EventCount
			r++
			req = m.Request(r)
		}
		return fn(req, i-start, ev)
	})
}

// Coalesce returns the metadata of one message holding requests of tenant,
// in order; the message's id is a new random batch id.
func Coalesce(tenant string, requests []Request) Meta {
	m := Meta{Tenant: tenant, BatchID: NewBatchID(), ReceivedAt: requests[0].ReceivedAt.UTC(), Requests: requests}
	for _, r := range requests {
		m.EventCount += r.Events
	}
	return m
}

func (m Meta) setCoalescedHeaders(h nats.Header) {
	b := make([]byte, 0, len(m.Requests)*RequestHeaderBytes)
	for i, r := range m.Requests {
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendInt(b, int64(r.Events), 10)
		b = append(b, '@')
		b = r.ReceivedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	}
	h.Set(stream.HeaderTenant, m.Tenant)
	h.Set(stream.HeaderMessageID, m.BatchID)
	h.Set(stream.HeaderRequests, string(b))
}

// coalescedFromHeaders reads the metadata of a coalesced message, whose
// tenant m holds already.
func coalescedFromHeaders(m Meta, h nats.Header) (Meta, error) {
	m.BatchID = h.Get(stream.HeaderMessageID)
	if !ValidBatchID(m.BatchID) || strings.IndexByte(m.BatchID, '-') >= 0 {
		return m, fmt.Errorf("%w: %s %q", ErrBadMeta, stream.HeaderMessageID, m.BatchID)
	}
	// (A Nats-Msg-Id is allowed: a replay from the dead-letter stream sets
	// one.)
	for _, name := range []string{stream.HeaderBatchID, stream.HeaderReceivedAt, stream.HeaderEventCount} {
		if h.Get(name) != "" {
			return m, fmt.Errorf("%w: %s with %s", ErrBadMeta, name, stream.HeaderMessageID)
		}
	}
	v := h.Get(stream.HeaderRequests)
	bad := func(why string) (Meta, error) {
		return m, fmt.Errorf("%w: %s %q: %s", ErrBadMeta, stream.HeaderRequests, short(v), why)
	}
	n := strings.Count(v, " ") + 1
	if n < 2 || n > MaxRequests {
		return bad(fmt.Sprintf("%d requests, want 2 to %d", n, MaxRequests))
	}
	m.Requests = make([]Request, 0, n)
	for rest := v; rest != ""; {
		entry := rest
		if j := strings.IndexByte(rest, ' '); j >= 0 {
			entry, rest = rest[:j], rest[j+1:]
		} else {
			rest = ""
		}
		count, at, found := strings.Cut(entry, "@")
		events, err := strconv.Atoi(count)
		if !found || err != nil || events < 1 {
			return bad("want <events>@<received_at> per request, events at least 1")
		}
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return bad("received_at " + strconv.Quote(at) + " is not RFC 3339")
		}
		t = t.UTC()
		if len(m.Requests) > 0 && !t.Truncate(time.Hour).Equal(m.ReceivedAt.Truncate(time.Hour)) {
			return bad("its requests were received in different hours")
		}
		if len(m.Requests) == 0 {
			m.ReceivedAt = t
		}
		m.Requests = append(m.Requests, Request{Events: events, ReceivedAt: t})
		m.EventCount += events
	}
	if len(m.Requests) != n {
		return bad("empty entry")
	}
	return m, nil
}

// short cuts a header value for an error message.
func short(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}
