package envelope

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-ingest/sluice/pkg/stream"
)

// ErrBadMeta is returned when a message's headers do not carry valid metadata.
var ErrBadMeta = errors.New("bad message metadata")

// ValidTenant reports whether s is a valid tenant id ([a-z0-9_-]{1,64}).
func ValidTenant(s string) bool { return validID(s, 64) }

// ValidBatchID reports whether s is a valid batch id ([a-z0-9_-]{1,128}).
func ValidBatchID(s string) bool { return validID(s, 128) }

// validID matches [a-z0-9_-]{1,max}; it runs for every message, so it is a
// loop rather than a regular expression.
func validID(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// NewBatchID returns a random batch id: 26 characters of lowercase base32.
func NewBatchID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return idEncoding.EncodeToString(b[:])
}

// BatchIDFor derives the batch id of a request that carries an
// Idempotency-Key, so a retry gets the same batch id and the same event ids.
func BatchIDFor(tenant, idempotencyKey string) string {
	h := sha256.New()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write([]byte(idempotencyKey))
	return idEncoding.EncodeToString(h.Sum(nil)[:16])
}

// Meta is what the gateway records about an accepted request, or about
// the requests of a coalesced message (coalesced.go).
type Meta struct {
	Tenant string
	// BatchID is the request's batch id, or the coalesced message's id.
	BatchID string
	// ReceivedAt is when the request was received, or its first request
	// (all of them were received in the same hour).
	ReceivedAt time.Time
	// EventCount is the number of events in the message.
	EventCount int
	// Idempotent marks a request that carried an Idempotency-Key: only then
	// is the batch id also the Nats-Msg-Id, so JetStream de-duplicates its
	// retries inside the duplicate window. Other requests carry no message
	// id, so JetStream keeps no de-duplication state for them.
	Idempotent bool
	// Requests lists the requests of a coalesced message, in body order;
	// nil for a message of one request.
	Requests []Request
}

// SetHeaders writes m into a JetStream message's headers.
func (m Meta) SetHeaders(h nats.Header) {
	if m.Coalesced() {
		m.setCoalescedHeaders(h)
		return
	}
	if m.Idempotent {
		h.Set(stream.HeaderMsgID, m.BatchID)
	}
	h.Set(stream.HeaderTenant, m.Tenant)
	h.Set(stream.HeaderBatchID, m.BatchID)
	h.Set(stream.HeaderReceivedAt, m.ReceivedAt.UTC().Format(time.RFC3339Nano))
	h.Set(stream.HeaderEventCount, strconv.Itoa(m.EventCount))
}

// MetaFromHeaders reads and validates the metadata of a message. An error
// means the message can never be stored as it is.
func MetaFromHeaders(h nats.Header) (Meta, error) {
	var m Meta
	m.Tenant = h.Get(stream.HeaderTenant)
	if !ValidTenant(m.Tenant) {
		return m, fmt.Errorf("%w: %s %q", ErrBadMeta, stream.HeaderTenant, m.Tenant)
	}
	if h.Get(stream.HeaderMessageID) != "" {
		return coalescedFromHeaders(m, h)
	}
	m.BatchID = h.Get(stream.HeaderBatchID)
	if !ValidBatchID(m.BatchID) {
		return m, fmt.Errorf("%w: %s %q", ErrBadMeta, stream.HeaderBatchID, m.BatchID)
	}
	ra := h.Get(stream.HeaderReceivedAt)
	t, err := time.Parse(time.RFC3339Nano, ra)
	if err != nil {
		return m, fmt.Errorf("%w: %s %q", ErrBadMeta, stream.HeaderReceivedAt, ra)
	}
	m.ReceivedAt = t.UTC()
	n, err := strconv.Atoi(h.Get(stream.HeaderEventCount))
	if err != nil || n < 1 {
		return m, fmt.Errorf("%w: %s %q", ErrBadMeta, stream.HeaderEventCount, h.Get(stream.HeaderEventCount))
	}
	m.EventCount = n
	return m, nil
}

// MetaOf reads and validates the metadata of a message published on
// subject: as MetaFromHeaders, and its Sluice-Tenant header must name the
// tenant of the subject (sluice.events.<tenant>). The subject is what NATS
// permissions grant; a header naming another tenant would let anyone who
// may publish for one tenant write into another's partition.
func MetaOf(subject string, h nats.Header) (Meta, error) {
	m, err := MetaFromHeaders(h)
	if err != nil {
		return m, err
	}
	if tenant, ok := stream.TenantOf(subject); !ok || tenant != m.Tenant {
		return m, fmt.Errorf("%w: %s %q disagrees with the subject %s", ErrBadMeta, stream.HeaderTenant, m.Tenant, subject)
	}
	return m, nil
}

// EachEvent calls fn for every event of an NDJSON body (one JSON object per
// line), with its zero-based index. Empty lines are not events.
func EachEvent(body []byte, fn func(index int, event []byte) error) error {
	i := 0
	for len(body) > 0 {
		line := body
		if j := bytes.IndexByte(body, '\n'); j >= 0 {
			line, body = body[:j], body[j+1:]
		} else {
			body = nil
		}
		if len(line) == 0 {
			continue
		}
		if err := fn(i, line); err != nil {
			return err
		}
		i++
	}
	return nil
}

// AppendLine appends one output line for event number index of the request
// described by m: {"id":"<batch_id>-<index>","tenant":...,"received_at":...,"data":<event>}\n.
// The tenant and batch id are validated, so they need no JSON escaping.
func AppendLine(dst []byte, m Meta, index int, event []byte) []byte {
	dst = append(dst, `{"id":"`...)
	dst = append(dst, m.BatchID...)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, int64(index), 10)
	dst = append(dst, `","tenant":"`...)
	dst = append(dst, m.Tenant...)
	dst = append(dst, `","received_at":"`...)
	dst = m.ReceivedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","data":`...)
	dst = append(dst, event...)
	return append(dst, '}', '\n')
}
