package pipeline

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sluice-ingest/sluice/worker/internal/batch"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

// A worker that cannot write (sink.Unwritable: credentials, permission,
// bucket, region) while other replicas may: retrying would hold its
// messages forever. It marks itself unwritable (/readyz 503,
// sluice_worker_s3_writable 0, a log line a minute), hands back every
// message it holds Nak'ed with HandBackDelay, fetches nothing, and checks
// every RetryMax with sink.CheckWritable, the first time before any fetch.

// errNotChecked is the state before the first write check.
var errNotChecked = errors.New("S3 write access not checked yet")

// writable is whether the worker can write to its bucket: nil when it can.
type writable struct {
	mu  sync.Mutex
	err error
	log logEvery
}

// Writable is nil while the worker can write to its bucket, else the
// reason it cannot (or has not checked yet).
func (p *Pipeline) Writable() error {
	p.writable.mu.Lock()
	defer p.writable.mu.Unlock()
	return p.writable.err
}

// refused is whether S3 has refused this worker's writes (rather than not
// checked yet).
func (p *Pipeline) refused() bool {
	err := p.Writable()
	return err != nil && err != errNotChecked
}

// cannotWrite records an error for which sink.Unwritable holds.
func (p *Pipeline) cannotWrite(err error) {
	w := &p.writable
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
	p.cfg.Metrics.s3Writable.Set(0)
	if ok, held := w.log.allow(time.Now()); ok {
		p.cfg.Log.Error("cannot write to S3; handing messages back to other workers and fetching nothing until it can",
			"err", err, "failures_since_last_log", held)
	}
}

// canWrite records that the worker can write.
func (p *Pipeline) canWrite() {
	w := &p.writable
	w.mu.Lock()
	was := w.err
	w.err = nil
	w.mu.Unlock()
	w.log.reset() // a new outage is logged at once
	p.cfg.Metrics.s3Writable.Set(1)
	if was != nil && was != errNotChecked {
		p.cfg.Log.Info("S3 writable again; fetching")
	}
}

// waitWritable holds the fetch goroutine while the worker cannot write or
// has not checked yet, checking again every RetryMax after a refusal (each
// message costs at most one delivery per RetryMax). A check failing in a
// way that may heal (S3 unreachable, 5xx) lets fetching go on. It returns
// false when ctx ends first.
func (p *Pipeline) waitWritable(ctx context.Context) bool {
	if p.Writable() == nil {
		return true
	}
	p.writeCheck.Lock() // the fetch goroutines of other consumers wait for this check
	defer p.writeCheck.Unlock()
	for p.Writable() != nil {
		if p.refused() {
			select {
			case <-ctx.Done():
				return false
			case <-time.After(p.cfg.RetryMax):
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := p.cfg.Sink.CheckWritable(cctx)
		cancel()
		if ctx.Err() != nil {
			return false
		}
		if err == nil || !sink.Unwritable(err) {
			if err != nil {
				p.cfg.Log.Warn("S3 write check failed; fetching anyway", "err", err)
			}
			p.canWrite()
			return true
		}
		p.cannotWrite(err)
	}
	return true
}

// handBack gives a batch's messages back to the stream for another worker.
// The delay keeps this worker's fetch under way from taking them straight
// back.
func (p *Pipeline) handBack(bt *batch.Batch) {
	for _, it := range bt.Items {
		_ = it.Msg.NakWithDelay(p.cfg.HandBackDelay)
	}
	p.cfg.Metrics.messages.WithLabelValues("retried").Add(float64(len(bt.Items)))
}

// handBackOpen hands back every open batch while the worker cannot write.
// Run calls it at each keep-alive tick.
func (p *Pipeline) handBackOpen() {
	if !p.refused() {
		return
	}
	for _, bt := range p.b.All(batch.ReasonShutdown) { // the reason is not counted: the batch is not cut
		p.handBack(bt)
		p.budget.release(held(bt))
		p.holding.done(bt)
	}
}
