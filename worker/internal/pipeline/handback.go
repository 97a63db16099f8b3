package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// Hand-backs do not count towards MaxDeliver: the server counts every
// delivery, so a worker that cannot write records each hand-back in
// SLUICE_HANDBACKS before its Nak, and a message at MaxDeliver is
// dead-lettered only if it still is with its recorded hand-backs taken off.
// The object that met the refusal is recorded only once a write check confirms
// it (docs/decisions.md, Hand-backs do not count towards MaxDeliver).

// HandBackTTL is how long a hand-back is remembered: longer than any
// outage an operator lets run, so a message handed back during one is not
// counted after it. The records are few (one per message held by a worker
// when it found it cannot write).
const HandBackTTL = 7 * 24 * time.Hour

// HandBackLog records hand-backs and counts those of a message.
type HandBackLog interface {
	// Record notes that the messages were handed back, each at the
	// delivery it is in.
	Record(ctx context.Context, hbs []HandBack) error
	// Count is how many hand-backs of the message with stream sequence
	// seq of the stream incarnation tag are recorded.
	Count(ctx context.Context, tag string, seq uint64) (int, error)
}

// HandBack is one message handed back: its stream incarnation and
// sequence, and the delivery (the server's NumDelivered) handed back.
type HandBack struct {
	Tag      string
	Seq      uint64
	Delivery uint64
}

func (hb HandBack) key() string {
	return hb.Tag + "." + strconv.FormatUint(hb.Seq, 10) + "." + strconv.FormatUint(hb.Delivery, 10)
}

// HandBacks is the HandBackLog in the KV bucket SLUICE_HANDBACKS.
type HandBacks struct {
	js jetstream.JetStream
	kv jetstream.KeyValue
}

// EnsureHandBacks creates or updates the bucket SLUICE_HANDBACKS. Safe to
// call from several processes at once.
func EnsureHandBacks(ctx context.Context, js jetstream.JetStream, replicas int) (*HandBacks, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      stream.HandBacksBucket,
		Description: "Sluice messages handed back by a worker that could not write to S3, one key per message and delivery; not counted towards SLUICE_MAX_DELIVER",
		History:     1,
		TTL:         HandBackTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("ensure bucket %s: %w", stream.HandBacksBucket, err)
	}
	return &HandBacks{js: js, kv: kv}, nil
}

// recordChunk bounds the publishes Record has in flight, under the
// client's limit of outstanding asynchronous publishes.
const recordChunk = 1000

// Record puts a key per hand-back: published together (a worker may hand
// back thousands of messages at once), then waited for. A key written
// twice is the same record.
func (h *HandBacks) Record(ctx context.Context, hbs []HandBack) error {
	for len(hbs) > 0 {
		n := min(len(hbs), recordChunk)
		futs := make([]jetstream.PubAckFuture, 0, n)
		value := []byte(time.Now().UTC().Format(time.RFC3339))
		for _, hb := range hbs[:n] {
			// The subject of a key, as kv.Put publishes it.
			f, err := h.js.PublishAsync("$KV."+stream.HandBacksBucket+"."+hb.key(), value)
			if err != nil {
				return fmt.Errorf("record hand-back %s: %w", hb.key(), err)
			}
			futs = append(futs, f)
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("record hand-back: %w", err)
			case <-ctx.Done():
				return fmt.Errorf("record hand-backs: %w", ctx.Err())
			}
		}
		hbs = hbs[n:]
	}
	return nil
}

// Count counts the keys of the message.
func (h *HandBacks) Count(ctx context.Context, tag string, seq uint64) (int, error) {
	kl, err := h.kv.ListKeysFiltered(ctx, tag+"."+strconv.FormatUint(seq, 10)+".*")
	if err != nil {
		return 0, fmt.Errorf("list hand-backs of %d: %w", seq, err)
	}
	defer func() { _ = kl.Stop() }()
	seen := map[string]bool{} // a listing may repeat a key
	for k := range kl.Keys() {
		seen[k] = true
	}
	if ctx.Err() != nil { // the listing ended early
		return 0, fmt.Errorf("list hand-backs of %d: %w", seq, ctx.Err())
	}
	return len(seen), nil
}

// recordHandBacks records the hand-back of the items, before they are
// Nak'ed. A failure is logged: those deliveries then count.
func (p *Pipeline) recordHandBacks(ctx context.Context, items []object.Item) {
	if p.cfg.HandBacks == nil || len(items) == 0 {
		return
	}
	hbs := make([]HandBack, 0, len(items))
	for _, it := range items {
		md, err := it.Msg.Metadata()
		if err != nil || it.Stream == "" {
			continue
		}
		hbs = append(hbs, HandBack{Tag: it.Stream, Seq: md.Sequence.Stream, Delivery: md.NumDelivered})
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := p.cfg.HandBacks.Record(rctx, hbs); err != nil {
		p.cfg.Log.Warn("recording hand-backs failed; this delivery of those messages counts towards MaxDeliver",
			"messages", len(hbs), "err", err)
		return
	}
	p.cfg.Metrics.handBacksRecorded.Add(float64(len(hbs)))
}

// countedDeliveries is a message's deliveries that count towards
// MaxDeliver: the server's, less the hand-backs recorded for it. check
// calls it only for a message at MaxDeliver by the server's count. When the
// records cannot be read, the message is Nak'ed with DeadLetterRetry (it
// is tried again then) and ok is false.
func (p *Pipeline) countedDeliveries(ctx context.Context, m jetstream.Msg, md *jetstream.MsgMetadata, tag string) (n uint64, ok bool) {
	if p.cfg.HandBacks == nil {
		return md.NumDelivered, true
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	handedBack, err := p.cfg.HandBacks.Count(cctx, tag, md.Sequence.Stream)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		p.cfg.Log.Warn("reading a message's hand-backs failed; trying it again later", "seq", md.Sequence.Stream,
			"deliveries", md.NumDelivered, "retry_in", p.cfg.DeadLetterRetry, "err", err)
		_ = m.NakWithDelay(p.cfg.DeadLetterRetry)
		p.cfg.Metrics.messages.WithLabelValues("retried").Inc()
		return 0, false
	}
	return md.NumDelivered - min(uint64(handedBack), md.NumDelivered), true
}
