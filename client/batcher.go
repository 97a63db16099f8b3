package client

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// Batcher gathers events added one by one into batches, each sent through
// SendRaw with one Idempotency-Key for all its retries, so it is stored once.
// A batch is sent at WithBatchEvents events, before WithBatchBytes would be
// passed, at WithBatchAge, and on Flush and Close; at most WithMaxInFlight at
// once, and past WithBufferBytes waiting Add returns ErrBufferFull. It is safe
// for concurrent use; Close must be called to stop its goroutines.
type Batcher struct {
	c   *Client
	cfg batchConfig

	// ctx is the sends' context, cancelled when Close gives up on them.
	ctx     context.Context
	cancel  context.CancelFunc
	senders sync.WaitGroup

	mu       sync.Mutex
	work     *sync.Cond // a batch was queued, or stopping was set
	open     *batch     // being filled; nil until an event comes
	queue    []*batch   // closed, waiting for a sender
	unsent   map[*batch]struct{}
	buffered int  // encoded event bytes in open, queue and being sent
	closed   bool // Add and Close refuse
	stopping bool // senders return once the queue is empty
	failed   failures
}

// batch is one request body being built: {"events":[e1,e2,...]}.
type batch struct {
	body   []byte
	events int
	bytes  int // what the batch counts in Batcher.buffered
	key    string
	timer  *time.Timer
	done   chan struct{} // closed once its result was handed over
}

const (
	bodyHead = `{"events":[`
	bodyTail = `]}`
)

// NewBatcher returns a batcher sending through c; an option out of range is
// an error naming it.
func NewBatcher(c *Client, opts ...BatchOption) (*Batcher, error) {
	cfg, err := newBatchConfig(opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Batcher{c: c, cfg: cfg, ctx: ctx, cancel: cancel, unsent: map[*batch]struct{}{}}
	b.work = sync.NewCond(&b.mu)
	for range cfg.inFlight {
		b.senders.Go(b.sender)
	}
	return b, nil
}

// Add encodes event (it must marshal to a JSON object) and adds it to the
// open batch. It never blocks on the network: when the buffer is full it
// returns ErrBufferFull at once, and the event is not added.
func (b *Batcher) Add(event any) error {
	ev, err := json.Marshal(event)
	if err != nil {
		return fmt.Errorf("sluice: encode event: %w", err)
	}
	if len(ev) == 0 || ev[0] != '{' {
		return fmt.Errorf("%w: %.40s", ErrNotObject, ev)
	}
	if len(bodyHead)+len(ev)+len(bodyTail) > b.cfg.bytes {
		return fmt.Errorf("%w: %d bytes, a batch takes %d", ErrEventTooLarge, len(ev), b.cfg.bytes-len(bodyHead)-len(bodyTail))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	size := len(ev) + 1 // with its comma
	if b.buffered+size > b.cfg.bufferBytes {
		return ErrBufferFull
	}
	if b.open != nil && len(b.open.body)+1+len(ev)+len(bodyTail) > b.cfg.bytes {
		b.sealLocked()
	}
	if b.open == nil {
		bt := &batch{body: make([]byte, 0, min(b.cfg.bytes, 4<<10)), key: newKey(), done: make(chan struct{})}
		bt.body = append(bt.body, bodyHead...)
		bt.timer = time.AfterFunc(b.cfg.age, func() { b.sealIfOpen(bt) })
		b.open = bt
		b.unsent[bt] = struct{}{}
	} else {
		b.open.body = append(b.open.body, ',')
	}
	b.open.body = append(b.open.body, ev...)
	b.open.events++
	b.open.bytes += size
	b.buffered += size
	if b.open.events >= b.cfg.events || len(b.open.body)+len(bodyTail) >= b.cfg.bytes {
		b.sealLocked()
	}
	return nil
}

// Flush closes the open batch and waits until every batch closed before it
// was sent (or failed), or until ctx ends: then it returns ctx's error and
// the batches are still sent. Otherwise it returns an error when batches
// failed since the last Flush (counting them, wrapping the last failure),
// else nil.
func (b *Batcher) Flush(ctx context.Context) error {
	_, err := b.flush(ctx)
	return err
}

// flush is Flush, also telling whether ctx ended before the batches were
// sent.
func (b *Batcher) flush(ctx context.Context) (gaveUp bool, err error) {
	b.mu.Lock()
	b.sealLocked()
	wait := make([]chan struct{}, 0, len(b.unsent))
	for bt := range b.unsent {
		wait = append(wait, bt.done)
	}
	b.mu.Unlock()
	for _, done := range wait {
		select { // a batch already sent counts, whatever ctx says
		case <-done:
			continue
		default:
		}
		select {
		case <-done:
		case <-ctx.Done():
			return true, fmt.Errorf("sluice: flush: batches still being sent: %w", ctx.Err())
		}
	}
	b.mu.Lock()
	f := b.failed
	b.failed = failures{}
	b.mu.Unlock()
	return false, f.err()
}

// Close refuses further events (ErrClosed), sends every batch (as Flush)
// and stops the batcher. When ctx ends first, the sends in flight are
// cancelled and the batches not sent fail with an error wrapping
// context.Canceled (each reported to WithResults); Close then returns an
// error counting them and wrapping ctx's error. A second Close returns
// ErrClosed.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.closed = true
	b.mu.Unlock()

	gaveUp, err := b.flush(ctx)
	if gaveUp {
		b.cancel() // the senders now fail what is left at once
	}
	b.mu.Lock()
	b.stopping = true
	b.work.Broadcast()
	b.mu.Unlock()
	b.senders.Wait()
	b.cancel()
	if !gaveUp {
		return err
	}
	b.mu.Lock()
	f := b.failed
	b.failed = failures{}
	b.mu.Unlock()
	if f.batches == 0 {
		return nil // the last ones were accepted before the cancel reached them
	}
	return fmt.Errorf("sluice: close: %w: %w", ctx.Err(), f.err())
}

// sealLocked closes the open batch and queues it for a sender.
func (b *Batcher) sealLocked() {
	bt := b.open
	if bt == nil {
		return
	}
	bt.timer.Stop()
	bt.body = append(bt.body, bodyTail...)
	b.open = nil
	b.queue = append(b.queue, bt)
	b.work.Signal()
}

// sealIfOpen is the age timer of bt: it may fire after bt was closed.
func (b *Batcher) sealIfOpen(bt *batch) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open == bt {
		b.sealLocked()
	}
}

// sender sends queued batches one at a time until stopping and the queue
// is empty.
func (b *Batcher) sender() {
	for {
		b.mu.Lock()
		for len(b.queue) == 0 && !b.stopping {
			b.work.Wait()
		}
		if len(b.queue) == 0 {
			b.mu.Unlock()
			return
		}
		bt := b.queue[0]
		b.queue[0] = nil
		b.queue = b.queue[1:]
		b.mu.Unlock()
		b.send(bt)
	}
}

func (b *Batcher) send(bt *batch) {
	r := BatchResult{Events: bt.events, IdempotencyKey: bt.key}
	body, err := b.c.compress(bt.body)
	if err == nil {
		r.Result, err = b.c.SendRaw(b.ctx, body, "application/json", bt.key)
	}
	if err != nil {
		r.Err = fmt.Errorf("send batch of %d events: %w", bt.events, err)
	}
	if b.cfg.results != nil {
		b.cfg.results(r)
	}
	b.mu.Lock()
	b.buffered -= bt.bytes
	delete(b.unsent, bt)
	if r.Err != nil {
		b.failed.add(bt.events, r.Err)
	}
	b.mu.Unlock()
	close(bt.done)
}

// failures counts the batches that failed since it was last reset, and
// keeps the last error: bounded however many fail.
type failures struct {
	batches, events int
	last            error
}

func (f *failures) add(events int, err error) {
	f.batches++
	f.events += events
	f.last = err
}

func (f failures) err() error {
	if f.batches == 0 {
		return nil
	}
	return fmt.Errorf("sluice: %d batches (%d events) not accepted, the last: %w", f.batches, f.events, f.last)
}
