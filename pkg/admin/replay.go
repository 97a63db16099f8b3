package admin

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// Replayer puts dead letters back into the events stream.
type Replayer struct {
	dlq    *DLQ
	events string
	// idPrefix names the dead-letter stream: its creation time, so a DLQ
	// deleted and created again (its sequences start at 1 again) never
	// reuses a replayed message's id.
	idPrefix string
	// receipts is the receipts bucket, once looked up (receiptsFound);
	// nil when it does not exist.
	receipts      jetstream.KeyValue
	receiptsFound bool
}

// Replayer returns a Replayer publishing into the events stream named
// events (empty means stream.EventsStream).
func (d *DLQ) Replayer(events string) *Replayer {
	if events == "" {
		events = stream.EventsStream
	}
	created := d.st.CachedInfo().Created.UnixNano()
	return &Replayer{dlq: d, events: events, idPrefix: "sluice-replay-" + strconv.FormatInt(created, 10) + "-"}
}

// MsgID is the Nats-Msg-Id a replayed dead letter is published with: the
// same dead letter always gets the same id, so publishing it again inside
// the events stream's duplicate window stores it once.
func (r *Replayer) MsgID(dl DeadLetter) string {
	return r.idPrefix + strconv.FormatUint(dl.Seq, 10)
}

// Message is what replaying dl publishes: on sluice.events.<tenant>, the
// tenant of its DLQ subject, the same body and original headers, without
// Sluice-Error, Sluice-Deliveries and Nats-* headers, with the replay's own
// Nats-Msg-Id. Headers that could never be stored are ErrNotReplayable;
// another tenant's headers or batch id are ErrRefused (foreign.go).
func (r *Replayer) Message(ctx context.Context, dl DeadLetter) (*nats.Msg, error) {
	meta, err := envelope.MetaFromHeaders(dl.Header)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotReplayable, err)
	}
	if err := r.checkForeign(ctx, dl, meta); err != nil {
		return nil, err
	}
	m := nats.NewMsg(stream.EventsSubject(dl.Tenant))
	for k, v := range dl.Header {
		switch k = textproto.CanonicalMIMEHeaderKey(k); {
		case k == stream.HeaderError, k == stream.HeaderDeliveries, strings.HasPrefix(k, "Nats-"):
			continue
		}
		m.Header[k] = v
	}
	m.Header.Set(stream.HeaderMsgID, r.MsgID(dl))
	m.Data = dl.Data
	return m, nil
}

// Publish publishes dl back into the events stream and returns the PubAck.
// PubAck.Duplicate means it had been published already, inside the
// duplicate window (a replay that stopped before removing it).
func (r *Replayer) Publish(ctx context.Context, dl DeadLetter) (*jetstream.PubAck, error) {
	m, err := r.Message(ctx, dl)
	if err != nil {
		return nil, err
	}
	return r.publish(ctx, dl, m)
}

func (r *Replayer) publish(ctx context.Context, dl DeadLetter, m *nats.Msg) (*jetstream.PubAck, error) {
	// No Nats-Expected-Stream header: the stream would keep it with the
	// message, and the worker copies headers into a dead letter, whose
	// publish to another stream it would then fail.
	ack, err := r.dlq.js.PublishMsg(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("publish dead letter %d to %s: %w", dl.Seq, m.Subject, err)
	}
	if ack.Stream != r.events {
		return nil, fmt.Errorf("publish dead letter %d to %s: stored in stream %s, not %s", dl.Seq, m.Subject, ack.Stream, r.events)
	}
	return ack, nil
}

// Remove deletes dl from the dead-letter stream; one already gone is not an
// error.
func (r *Replayer) Remove(ctx context.Context, dl DeadLetter) error {
	err := r.dlq.st.DeleteMsg(ctx, dl.Seq)
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("delete dead letter %d: %w", dl.Seq, err)
	}
	return nil
}

// Replayed is the outcome of one dead letter of Replay.
type Replayed struct {
	DeadLetter
	// Msg is what is (or, in a dry run, would be) published; nil when
	// skipped.
	Msg *nats.Msg
	// Ack is the events stream's PubAck; nil in a dry run or when skipped.
	Ack *jetstream.PubAck
	// Skipped says why the dead letter stayed in the DLQ (ErrNotReplayable,
	// ErrRefused).
	Skipped error
}

// Replay replays every dead letter f keeps, the oldest first: each is
// published, and removed from the dead-letter stream only after its PubAck.
// With dryRun nothing is published or removed. report is called for each
// one. When ctx ends, the dead letter being replayed is finished (within
// timeout) and Replay returns ctx's error.
func (r *Replayer) Replay(ctx context.Context, f Filter, dryRun bool, timeout time.Duration, report func(Replayed) error) error {
	return r.dlq.Scan(ctx, f, func(dl DeadLetter) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		out := Replayed{DeadLetter: dl}
		// An interrupt must not fall between the PubAck and the delete.
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		m, err := r.Message(octx, dl)
		switch {
		case errors.Is(err, ErrNotReplayable), errors.Is(err, ErrRefused):
			out.Skipped = err
			return report(out)
		case err != nil:
			return err
		}
		out.Msg = m
		if dryRun {
			return report(out)
		}
		ack, err := r.publish(octx, dl, m)
		if err != nil {
			return err
		}
		if err := r.Remove(octx, dl); err != nil {
			return fmt.Errorf("%w (already in %s as seq %d: replay again within the duplicate window only removes it)", err, ack.Stream, ack.Sequence)
		}
		out.Ack = ack
		return report(out)
	})
}
