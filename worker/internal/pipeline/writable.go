package pipeline

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sluice-ingest/sluice/worker/internal/object"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

// A worker that cannot write (sink.Unwritable) while other replicas may does
// not retry, which would hold its messages forever: it marks itself unwritable
// (/readyz 503, sluice_worker_s3_writable 0, a log line a minute), leaves the
// assignment, hands back its messages (handback.go), fetches nothing, and
// checks every RetryMax, first before any fetch, whether it can write again
// (docs/decisions.md, A worker that cannot write hands its messages back).

// ErrNotChecked is Writable's answer before the first write check.
var ErrNotChecked = errors.New("S3 write access not checked yet")

// writable is whether the worker can write to its bucket: nil when it can.
type writable struct {
	mu  sync.Mutex
	err error
	// ok is closed while err is nil: the fetch goroutines wait for it.
	ok chan struct{}
	// lost wakes checkWrites after a refusal; changed tells the
	// membership that err went from nil to not checked or refused, or
	// back. Both hold one signal.
	lost, changed chan struct{}
	log           logEvery
}

func (w *writable) init() {
	w.err, w.ok = ErrNotChecked, make(chan struct{})
	w.lost, w.changed = make(chan struct{}, 1), make(chan struct{}, 1)
	w.log.every = time.Minute
}

// set records err (nil: writable) and reports whether that changed its
// class: writable, not checked, refused.
func (w *writable) set(err error) (was error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	was, w.err = w.err, err
	switch {
	case was != nil && err == nil:
		close(w.ok)
	case was == nil && err != nil:
		w.ok = make(chan struct{})
	}
	if class(was) != class(err) {
		signal(w.changed)
	}
	return was
}

func class(err error) int {
	switch err {
	case nil:
		return 0
	case ErrNotChecked:
		return 1
	}
	return 2
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Writable is nil while the worker can write to its bucket, else the
// reason it cannot (or ErrNotChecked).
func (p *Pipeline) Writable() error {
	p.writable.mu.Lock()
	defer p.writable.mu.Unlock()
	return p.writable.err
}

// WritableChanged receives a value after Writable changed between nil,
// ErrNotChecked and a refusal. It has one reader: the membership.
func (p *Pipeline) WritableChanged() <-chan struct{} { return p.writable.changed }

// refused is whether S3 has refused this worker's writes (rather than not
// checked yet).
func (p *Pipeline) refused() bool {
	err := p.Writable()
	return err != nil && err != ErrNotChecked
}

// cannotWrite records an error for which sink.Unwritable holds.
func (p *Pipeline) cannotWrite(err error) {
	w := &p.writable
	w.set(err)
	signal(w.lost)
	p.cfg.Metrics.s3Writable.Set(0)
	if ok, held := w.log.allow(time.Now()); ok {
		p.cfg.Log.Error("cannot write to S3; handing messages back to other workers and fetching nothing until it can",
			"err", err, "failures_since_last_log", held)
	}
}

// canWrite records that the worker can write.
func (p *Pipeline) canWrite() {
	w := &p.writable
	was := w.set(nil)
	w.log.reset() // a new outage is logged at once
	p.cfg.Metrics.s3Writable.Set(1)
	if was != nil && was != ErrNotChecked {
		p.cfg.Log.Info("S3 writable again; fetching")
	}
}

// waitWritable holds a fetch goroutine while the worker cannot write or
// has not checked yet. It returns false when ctx ends first.
func (p *Pipeline) waitWritable(ctx context.Context) bool {
	for {
		w := &p.writable
		w.mu.Lock()
		err, ok := w.err, w.ok
		w.mu.Unlock()
		if err == nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-ok:
		}
	}
}

// checkWrites runs the write checks until ctx ends: one at once, none while
// the worker can write, and after a refusal one every RetryMax until one
// passes, so even a check passing while uploads are refused costs a message at
// most one delivery per RetryMax. A check failing in a way that may heal (S3
// unreachable, 5xx) lets fetching go on: uploads retry as in any S3 outage. It
// returns a func that waits for it to return.
func (p *Pipeline) checkWrites(ctx context.Context) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			switch err := p.Writable(); {
			case err == nil:
				select {
				case <-ctx.Done():
				case <-p.writable.lost:
				}
				continue
			case err != ErrNotChecked:
				select {
				case <-ctx.Done():
					return
				case <-time.After(p.cfg.RetryMax):
				}
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := p.cfg.Sink.CheckWritable(cctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err == nil || !sink.Unwritable(err) {
				if err != nil {
					p.cfg.Log.Warn("S3 write check failed; fetching anyway", "err", err)
				}
				p.canWrite()
				continue
			}
			p.cannotWrite(err)
		}
	}()
	return func() { <-done }
}

// confirmRefused is whether a write check run now confirms that this
// worker cannot write at all, after an upload was refused.
func (p *Pipeline) confirmRefused(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return sink.Unwritable(p.cfg.Sink.CheckWritable(cctx))
}

// handBack gives an object's messages back to the stream for another worker,
// having recorded the hand-back unless counted is set (handback.go), then
// stopped their keep-alive (stop). The delay keeps this worker's fetch
// under way from taking them straight back.
func (p *Pipeline) handBack(ctx context.Context, bt *object.Object, counted bool, stop func()) {
	if !counted {
		p.recordHandBacks(ctx, bt.Items)
	}
	stop()
	for _, it := range bt.Items {
		_ = it.Msg.NakWithDelay(p.cfg.HandBackDelay)
	}
	p.cfg.Metrics.messages.WithLabelValues("retried").Add(float64(len(bt.Items)))
}

// handBackRefused hands back the object whose upload met err, for which
// sink.Unwritable holds. Its delivery counts towards MaxDeliver unless a
// write check confirms that the worker cannot write at all: the refusal
// may be about this very object.
func (p *Pipeline) handBackRefused(ctx context.Context, bt *object.Object, err error, stop func()) {
	p.cannotWrite(err)
	p.handBack(ctx, bt, !p.confirmRefused(ctx), stop)
}

// handBackOpen hands back every open object while the worker cannot write.
// Run calls it at each keep-alive tick.
func (p *Pipeline) handBackOpen() {
	if !p.refused() {
		return
	}
	for _, bt := range p.open.All(object.ReasonShutdown) { // the reason is not counted: the object is not cut
		p.handBack(context.Background(), bt, false, func() {})
		p.budget.release(held(bt))
		p.holding.done(bt)
	}
}
