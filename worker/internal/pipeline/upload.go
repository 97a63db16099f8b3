package pipeline

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/worker/internal/object"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

// upload stores one cut object and settles every message in it: acked once
// stored, dead-lettered if it can never be stored, Nak'ed if ctx ended
// first. It keeps the messages alive with InProgress while it works, and
// releases the object's bytes from the budget at the end. It reports whether
// every message was stored, dead-lettered or handed back to other workers.
func (p *Pipeline) upload(ctx context.Context, bt *object.Object) bool {
	defer p.budget.release(held(bt))
	defer p.holding.done(bt)
	stop := keepAlive(bt.Items, p.cfg.KeepAlive)
	defer stop()
	return p.store(ctx, bt, stop)
}

// keepAlive sends InProgress for the messages every interval until the
// returned func is called; that func waits for the last one to be sent.
func keepAlive(items []object.Item, every time.Duration) func() {
	msgs := make([]jetstream.Msg, len(items))
	for i, it := range items {
		msgs[i] = it.Msg
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				for _, m := range msgs {
					_ = m.InProgress()
				}
			}
		}
	})
	var once sync.Once
	return func() { once.Do(func() { close(quit); wg.Wait() }) }
}

// store encodes and uploads bt, retrying with backoff and jitter (cut
// short when another upload succeeds: recovery.go), and
// decides here what each upload error means (sink.Permanent judges retry):
// nil acks every message; sink.ErrConflict splits the object and stores each
// half; permanent dead-letters every message; sink.Unwritable hands them
// back (writable.go); anything else retries until ctx ends, then Naks.
func (p *Pipeline) store(ctx context.Context, bt *object.Object, stopKeepAlive func()) bool {
	if ctx.Err() != nil { // shutdown timeout passed while it waited: do not compress it only to give up
		p.nakAll(bt)
		return false
	}
	if p.refused() { // this worker cannot write: another one will (writable.go)
		p.handBack(ctx, bt, false, stopKeepAlive)
		return true
	}
	obj, err := p.cfg.Sink.Encode(bt)
	if err != nil { // a compressor failure: retrying the same bytes cannot help
		p.deadLetterObject(ctx, bt, err)
		return true
	}
	p.budget.add(int64(len(obj.Body)))
	defer p.budget.release(int64(len(obj.Body)))
	backoff := p.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		start := time.Now()
		key, err := p.cfg.Sink.Put(ctx, obj)
		p.cfg.Metrics.uploadSeconds.Observe(time.Since(start).Seconds())
		switch {
		case err == nil:
			p.recovery.succeeded()
			if !p.recordLanded(ctx, bt, key) { // stopped before the receipts were written: never ack without them (record.go)
				p.nakAll(bt)
				return false
			}
			stopKeepAlive()
			p.ack(bt, obj, key)
			return true
		case errors.Is(err, sink.ErrConflict) && len(bt.Items) > 1:
			p.cfg.Log.Warn("key holds another object; splitting", "key", key, "err", err)
			lo, hi := bt.Split()
			// Both halves, whatever the first did: each settles its
			// own messages (stored, dead-lettered or Nak'ed).
			loStored := p.store(ctx, lo, func() {})
			hiStored := p.store(ctx, hi, func() {})
			return loStored && hiStored
		case errors.Is(err, sink.ErrConflict), sink.Permanent(err):
			p.cfg.Log.Error("object can never be stored; dead-lettering", "key", obj.Key, "err", err)
			p.deadLetterObject(ctx, bt, err)
			return true
		}
		if sink.Unwritable(err) { // the worker is broken, not the object (writable.go)
			p.handBackRefused(ctx, bt, err, stopKeepAlive)
			return true
		}
		if ctx.Err() != nil {
			p.nakAll(bt)
			return false
		}
		wait := backoff + rand.N(backoff)
		p.cfg.Metrics.uploadRetries.Inc()
		p.cfg.Log.Warn("upload failed; retrying", "key", obj.Key, "attempt", attempt, "in", wait, "err", err)
		back := p.recovery.next()
		select {
		case <-ctx.Done():
			p.nakAll(bt)
			return false
		case <-time.After(wait):
			backoff = min(2*backoff, p.cfg.RetryMax)
		case <-back: // another upload went through: S3 is back
			backoff = p.cfg.RetryMin
		}
	}
}

// ack acknowledges the messages of an object stored under key.
func (p *Pipeline) ack(bt *object.Object, obj sink.Object, key string) {
	p.cfg.Metrics.objects.Inc()
	p.cfg.Metrics.objectBytes.Observe(float64(len(obj.Body)))
	p.cfg.Metrics.events.Add(float64(obj.Events))
	if p.inc.isDeleted(bt.Stream) {
		p.cfg.Log.Warn("object stored; its messages' stream or consumer was deleted, so they are not acked: "+
			"an ack would settle the message with the same sequence in the new one", "key", key, "messages", len(bt.Items))
		return
	}
	for _, it := range bt.Items {
		if err := it.Msg.Ack(); err != nil {
			// The object is stored; a lost ack means a redelivery, which
			// writes the same lines with the same ids.
			p.cfg.Log.Warn("ack after upload failed", "key", key, "seq", it.Seq, "err", err)
		}
	}
	p.cfg.Metrics.messages.WithLabelValues("acked").Add(float64(len(bt.Items)))
	p.cfg.Log.Debug("object stored", "key", key, "events", obj.Events, "bytes", len(obj.Body), "reason", bt.Reason)
}

func (p *Pipeline) nakAll(bt *object.Object) {
	if p.inc.isDeleted(bt.Stream) {
		p.cfg.Log.Warn("object not stored; its messages' consumer (perhaps with their stream) was deleted, so there is nothing to hand them back to",
			"messages", len(bt.Items))
		return
	}
	for _, it := range bt.Items {
		_ = it.Msg.Nak()
	}
	p.cfg.Metrics.messages.WithLabelValues("retried").Add(float64(len(bt.Items)))
}

func (p *Pipeline) deadLetterObject(ctx context.Context, bt *object.Object, cause error) {
	for _, it := range bt.Items {
		var n uint64
		if md, err := it.Msg.Metadata(); err == nil {
			n = md.NumDelivered
		}
		p.deadLetter(ctx, it.Msg, n, cause, bt.Stream)
	}
}
