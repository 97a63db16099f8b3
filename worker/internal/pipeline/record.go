package pipeline

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/ledger"
	"github.com/sluice-ingest/sluice/pkg/receipts"
	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// Proof of delivery: receipts and counters. A stored object's receipts and
// landed counts are written before its messages are acked; a dead letter's
// before it is terminated. A failed write is retried with the messages kept
// alive, then they are Nak'ed, never acked without their receipt: the
// redelivery meets the stored object and writes the same records again,
// which count once (receipts.Writer.Record, ledger.DuplicateWindow).

// Recorder is what the pipeline asks to record outcomes. Recorded (below)
// is the real one; nil records nothing.
type Recorder interface {
	Landed(ctx context.Context, l Landing) error
	DeadLettered(ctx context.Context, d DeadLetter) error
}

// Landing is an object stored under Key holding Batches of one tenant and
// hour.
type Landing struct {
	Key     string
	Tenant  string
	Hour    time.Time
	Batches []receipts.Batch
	At      time.Time
}

// DeadLetter is a message copied to SLUICE_DLQ.
type DeadLetter struct {
	Meta envelope.Meta
	// Stream and Seq are its stream incarnation and sequence.
	Stream string
	Seq    uint64
	Cause  error
	At     time.Time
}

// Recorded writes receipts into SLUICE_RECEIPTS and counts into
// SLUICE_COUNTERS.
type Recorded struct {
	JS       jetstream.JetStream
	Receipts *receipts.Writer
}

// Landed writes the receipts of l's batches, then counts the events of
// those whose receipt this landing created.
func (r Recorded) Landed(ctx context.Context, l Landing) error {
	id := receipts.ObjectOutcome(l.Key)
	counted, err := r.Receipts.Record(ctx, l.Batches, receipts.Outcome{ID: id, Key: l.Key, At: l.At})
	if err != nil {
		return err
	}
	var n int64
	for i, c := range counted {
		if c {
			n += int64(l.Batches[i].Events)
		}
	}
	if n == 0 {
		return nil
	}
	return ledger.Add(ctx, r.JS, ledger.Landed, l.Tenant, l.Hour, n, "landed-"+id)
}

// DeadLettered writes the dead letter's receipt, then counts its events
// dead unless the batch was counted elsewhere (it landed before).
func (r Recorded) DeadLettered(ctx context.Context, d DeadLetter) error {
	id := receipts.DeadLetterOutcome(d.Stream, d.Seq)
	b := []receipts.Batch{receiptBatch(d.Meta)}
	counted, err := r.Receipts.Record(ctx, b, receipts.Outcome{ID: id, Error: d.Cause.Error(), At: d.At})
	if err != nil || !counted[0] {
		return err
	}
	hour := d.Meta.ReceivedAt.UTC().Truncate(time.Hour)
	return ledger.Add(ctx, r.JS, ledger.Dead, d.Meta.Tenant, hour, int64(d.Meta.EventCount), "dead-"+id)
}

// recordLanded records the landing of bt in the object stored under key,
// retrying with backoff while ctx lasts (the upload keeps the messages
// alive meanwhile). It returns false when ctx ended first: the caller must
// not ack.
func (p *Pipeline) recordLanded(ctx context.Context, bt *object.Object, key string) bool {
	if p.cfg.Record == nil {
		return true
	}
	l := Landing{Key: key, Tenant: bt.Tenant, Hour: bt.Hour, At: time.Now().UTC()}
	seen := make(map[uint64]bool, len(bt.Items))
	for _, it := range bt.Items { // a message delivered twice into the object is stored once
		if !seen[it.Seq] {
			seen[it.Seq] = true
			l.Batches = append(l.Batches, receiptBatch(it.Meta))
		}
	}
	// An attempt writes a receipt per message, window by window: give a
	// big object the time its round trips take.
	timeout := 10*time.Second + time.Duration(len(l.Batches))*time.Millisecond
	return p.retryRecord(ctx, "write receipts of "+key, timeout, func(ctx context.Context) error { return p.cfg.Record.Landed(ctx, l) })
}

// receiptBatch is what the receipt of a message records: one receipt per
// message, for a coalesced one too (its requests' batch ids are answered
// from it, see receipts.Get), so that a message costs one receipt write
// whatever the number of requests it holds.
func receiptBatch(m envelope.Meta) receipts.Batch {
	return receipts.Batch{Tenant: m.Tenant, BatchID: m.BatchID, Events: m.EventCount, Requests: m.RequestEvents()}
}

// recordDead records a dead letter of m (copied to SLUICE_DLQ already). A
// message without valid metadata was never accepted by a gateway: it has no
// receipt and is not counted. It returns false when the record could not be
// written within RetryMax: the caller keeps the message in the stream, to
// be dead-lettered (and recorded) again.
func (p *Pipeline) recordDead(ctx context.Context, m jetstream.Msg, seq uint64, tag string, cause error) bool {
	if p.cfg.Record == nil {
		return true
	}
	meta, err := envelope.MetaOf(m.Subject(), m.Headers())
	if err != nil {
		return true
	}
	d := DeadLetter{Meta: meta, Stream: tag, Seq: seq, Cause: cause, At: time.Now().UTC()}
	// Bounded: the fetch goroutine dead-letters poison messages itself.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.RetryMax)
	defer cancel()
	return p.retryRecord(rctx, "write the dead letter's receipt", 10*time.Second, func(ctx context.Context) error { return p.cfg.Record.DeadLettered(ctx, d) })
}

// retryRecord calls write until it succeeds or ctx ends, backing off as
// uploads do; each attempt is bounded to timeout.
func (p *Pipeline) retryRecord(ctx context.Context, what string, timeout time.Duration, write func(context.Context) error) bool {
	backoff := p.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, timeout)
		err := write(actx)
		cancel()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			p.cfg.Log.Warn(what+" failed; not acked", "attempt", attempt, "err", errors.Join(err, ctx.Err()))
			return false
		}
		wait := backoff + rand.N(backoff)
		p.cfg.Log.Warn(what+" failed; retrying", "attempt", attempt, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		backoff = min(2*backoff, p.cfg.RetryMax)
	}
}
