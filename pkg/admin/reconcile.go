package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/ledger"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// Hour is one tenant-hour's reconciliation. Pending is what was accepted
// and has neither landed nor been dead-lettered yet: accepted - landed -
// dead.
type Hour struct {
	Hour     time.Time `json:"hour"`
	Accepted int64     `json:"accepted"`
	Landed   int64     `json:"landed"`
	Dead     int64     `json:"dead"`
	Pending  int64     `json:"pending"`
	// Closed is an hour whose counts can no longer change: it ended more
	// than the grace ago and the events stream holds no message of the
	// tenant received in it or before.
	Closed bool `json:"closed"`
}

// Differs reports a closed hour whose accepted events are not all landed or
// dead-lettered (or more are than were accepted).
func (h Hour) Differs() bool { return h.Closed && h.Accepted != h.Landed+h.Dead }

// ErrNoCounters means the counter stream does not exist: no gateway or
// worker that counts has started on this NATS.
var ErrNoCounters = errors.New("stream not found: " + ledger.Stream)

// Reconcile returns the counts of tenant for each hour from from to to, and
// whether each is closed at now. grace covers the gateways' counts not yet
// flushed (a second) and clocks that differ between processes.
func Reconcile(ctx context.Context, js jetstream.JetStream, events, tenant string, from, to, now time.Time, grace time.Duration) ([]Hour, error) {
	if !envelope.ValidTenant(tenant) {
		return nil, fmt.Errorf("tenant %q is not a tenant id ([a-z0-9_-]{1,64})", tenant)
	}
	oldest, held, err := oldestHeld(ctx, js, events, tenant)
	if err != nil {
		return nil, err
	}
	counts, err := ledger.Read(ctx, js, tenant, from, to)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNoCounters
	}
	if err != nil {
		return nil, err
	}
	out := make([]Hour, 0, len(counts))
	for _, c := range counts {
		end := c.Hour.Add(time.Hour)
		out = append(out, Hour{
			Hour: c.Hour, Accepted: c.Accepted, Landed: c.Landed, Dead: c.Dead,
			Pending: c.Accepted - c.Landed - c.Dead,
			Closed:  !end.Add(grace).After(now) && (!held || !oldest.Before(end)),
		})
	}
	return out, nil
}

// oldestHeld returns when the oldest message of tenant that the events
// stream holds was received (held is false when it holds none). Messages
// are stored about in the order they are received, so every hour before it
// has nothing of the tenant left in the stream.
func oldestHeld(ctx context.Context, js jetstream.JetStream, events, tenant string) (time.Time, bool, error) {
	st, err := js.Stream(ctx, events)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return time.Time{}, false, fmt.Errorf("%w: %s", ErrStreamMissing, events)
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("stream %s: %w", events, err)
	}
	m, err := stream.NextStored(ctx, st, 1, tenant)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("oldest message of %s in %s: %w", tenant, events, err)
	}
	meta, err := envelope.MetaFromHeaders(m.Header)
	if err != nil { // a poison message: it goes to the DLQ soon; take its storage time
		return m.Time.UTC(), true, nil
	}
	return meta.ReceivedAt, true, nil
}
