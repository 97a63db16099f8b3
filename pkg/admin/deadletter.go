package admin

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// DeadLetter is one message of the dead-letter stream.
type DeadLetter struct {
	Seq uint64 `json:"seq"`
	// Time is when it was stored in the dead-letter stream.
	Time time.Time `json:"time"`
	// Tenant is the one of its subject, sluice.dlq.<tenant>.
	Tenant     string `json:"tenant"`
	BatchID    string `json:"batch_id"`
	ReceivedAt string `json:"received_at"`
	// Events and Deliveries are nil when the header is missing or not a
	// number.
	Events     *int    `json:"events"`
	Deliveries *uint64 `json:"deliveries"`
	Error      string  `json:"error"`
	Bytes      int     `json:"bytes"`

	Subject string      `json:"-"`
	Header  nats.Header `json:"-"`
	Data    []byte      `json:"-"`
}

func deadLetterOf(m *jetstream.RawStreamMsg) DeadLetter {
	h := m.Header
	if h == nil {
		h = nats.Header{}
	}
	dl := DeadLetter{
		Seq:        m.Sequence,
		Time:       m.Time.UTC(),
		Tenant:     strings.TrimPrefix(m.Subject, stream.DLQSubject("")),
		BatchID:    h.Get(stream.HeaderBatchID),
		ReceivedAt: h.Get(stream.HeaderReceivedAt),
		Error:      h.Get(stream.HeaderError),
		Bytes:      len(m.Data),
		Subject:    m.Subject,
		Header:     h,
		Data:       m.Data,
	}
	if n, err := strconv.Atoi(h.Get(stream.HeaderEventCount)); err == nil {
		dl.Events = &n
	}
	if h.Get(stream.HeaderMessageID) != "" { // a coalesced message: its id and first request's time
		if meta, err := envelope.MetaFromHeaders(h); err == nil {
			dl.BatchID, dl.ReceivedAt, dl.Events = meta.BatchID, meta.ReceivedAt.Format(time.RFC3339Nano), &meta.EventCount
		}
	}
	if n, err := strconv.ParseUint(h.Get(stream.HeaderDeliveries), 10, 64); err == nil {
		dl.Deliveries = &n
	}
	return dl
}

// Filter chooses dead letters.
type Filter struct {
	// Tenant, when set, keeps only the dead letters of sluice.dlq.<Tenant>.
	Tenant string
	// Limit, when positive, stops after that many (the oldest first).
	Limit int
}

// subject is the DLQ subject the filter reads.
func (f Filter) subject() (string, error) {
	if f.Tenant == "" {
		return stream.DLQSubject(">"), nil
	}
	if !envelope.ValidTenant(f.Tenant) {
		return "", fmt.Errorf("tenant %q is not a tenant id ([a-z0-9_-]{1,64})", f.Tenant)
	}
	return stream.DLQSubject(f.Tenant), nil
}

// DLQ reads and changes the dead-letter stream.
type DLQ struct {
	js jetstream.JetStream
	st jetstream.Stream
}

// OpenDLQ looks the dead-letter stream up; ErrStreamMissing when it does not
// exist.
func OpenDLQ(ctx context.Context, js jetstream.JetStream) (*DLQ, error) {
	st, err := openStream(ctx, js, stream.DLQStream)
	if err != nil {
		return nil, err
	}
	return &DLQ{js: js, st: st}, nil
}

func openStream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	st, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrStreamMissing, name)
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", name, err)
	}
	return st, nil
}

// Scan calls fn with each dead letter that f keeps, in sequence order, up to
// the last one stored when Scan began: what is dead-lettered meanwhile (a
// replayed message that fails again, say) waits for the next run. It reads
// each message by sequence, so it leaves no consumer behind. An error from
// fn ends the scan and is returned.
func (d *DLQ) Scan(ctx context.Context, f Filter, fn func(DeadLetter) error) error {
	subject, err := f.subject()
	if err != nil {
		return err
	}
	info, err := d.st.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream info %s: %w", stream.DLQStream, err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	last := info.State.LastSeq
	n := 0
	for seq := info.State.FirstSeq; seq <= last && (f.Limit <= 0 || n < f.Limit); n++ {
		// With a subject, the server answers the first message at or
		// after seq on it, skipping deleted ones and other tenants'.
		m, err := d.st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s from seq %d: %w", stream.DLQStream, seq, err)
		}
		if m.Sequence > last {
			return nil
		}
		if err := fn(deadLetterOf(m)); err != nil {
			return err
		}
		seq = m.Sequence + 1
	}
	return nil
}
