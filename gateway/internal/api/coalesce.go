package api

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/envelope"
)

// Group commit: while a tenant has PublishesPerSubject publishes awaiting a
// PubAck, its ready requests wait and go out as one coalesced message
// (envelope.Coalesce) when one completes, as the broker and workers work per
// message; with fewer in flight a request goes at once, alone. Each waiter
// gets 202 with its batch id (envelope.RequestBatchID) or the publish's error
// (docs/decisions.md, Coalescing concurrent requests of a tenant into one message).

// Bounds of a coalesced message.
const (
	// PublishesPerSubject is the most publishes of one subject in flight
	// at once while requests of that subject wait to be coalesced: small,
	// so that batches form, and more than one, so that a batch forms while
	// the other is stored.
	PublishesPerSubject = 2
	// MaxCoalesced is the most requests in one message.
	MaxCoalesced = 64
)

// coalescer holds the requests waiting for a publish of their subject to
// complete.
type coalescer struct {
	h *Handler
	// maxBytes bounds a message's body and per-request headers: the
	// broker's max_payload less headerRoom.
	maxBytes atomic.Int64

	mu    sync.Mutex
	lanes map[string]*lane // by subject; a lane with nothing in flight is removed
}

// lane is one subject's publishes in flight and its waiting groups, in
// arrival order.
type lane struct {
	inflight int
	pending  []*group
}

// group is requests that go out as one message.
type group struct {
	waiters []*waiter
	bytes   int64
	hour    time.Time // a message holds requests of one hour (envelope)
	// launched is set (under coalescer.mu) when the group is taken for
	// publishing: its waiters cannot leave it any more. built is closed
	// once their bodies are copied into the message, done once the
	// publish ended; meta, ack and err are set before done is closed.
	launched bool
	built    chan struct{}
	done     chan struct{}
	meta     envelope.Meta
	ack      *jetstream.PubAck
	err      error
}

type waiter struct {
	meta  envelope.Meta // the request's, without a batch id
	body  []byte
	index int // in the message, set when it is built
}

func newCoalescer(h *Handler, maxPayload int64) *coalescer {
	c := &coalescer{h: h, lanes: make(map[string]*lane)}
	c.setMaxPayload(maxPayload)
	return c
}

func (c *coalescer) setMaxPayload(maxPayload int64) { c.maxBytes.Store(maxPayload - headerRoom) }

// publish publishes the request req (its batch id unset) with its NDJSON
// body on subject, alone or coalesced with others, and returns its
// metadata (with its batch id) and the PubAck of the message holding it.
func (c *coalescer) publish(ctx context.Context, subject string, req envelope.Meta, body []byte) (envelope.Meta, *jetstream.PubAck, error) {
	c.mu.Lock()
	l := c.lanes[subject]
	if l == nil {
		l = &lane{}
		c.lanes[subject] = l
	}
	if l.inflight < PublishesPerSubject && len(l.pending) == 0 {
		l.inflight++
		c.mu.Unlock()
		req.BatchID = envelope.NewBatchID()
		ack, err := c.h.publishAlone(ctx, subject, req, body)
		c.completed(subject)
		return req, ack, err
	}
	w := &waiter{meta: req, body: body}
	g := c.join(l, w)
	c.mu.Unlock()

	select {
	case <-g.done:
		if g.err != nil {
			return req, nil, g.err
		}
		return g.meta.Request(w.index), g.ack, nil
	case <-ctx.Done():
		if !c.leave(subject, g, w) {
			<-g.built // the caller may reuse body once it is copied
		}
		return req, nil, &brokerError{fmt.Errorf("publish to %s: %w", subject, ctx.Err())}
	}
}

// join adds w to the last waiting group of l, or to a new one when that
// one is full or of another hour. The caller holds c.mu.
func (c *coalescer) join(l *lane, w *waiter) *group {
	size := int64(len(w.body) + envelope.RequestHeaderBytes)
	hour := w.meta.ReceivedAt.UTC().Truncate(time.Hour)
	if n := len(l.pending); n > 0 {
		g := l.pending[n-1]
		if len(g.waiters) < MaxCoalesced && g.bytes+size <= c.maxBytes.Load() && g.hour.Equal(hour) {
			g.waiters = append(g.waiters, w)
			g.bytes += size
			return g
		}
	}
	g := &group{waiters: []*waiter{w}, bytes: size, hour: hour, built: make(chan struct{}), done: make(chan struct{})}
	l.pending = append(l.pending, g)
	return g
}

// leave takes w out of g, unless g was launched already: then it reports
// false, and w's events go out with the others.
func (c *coalescer) leave(subject string, g *group, w *waiter) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g.launched {
		return false
	}
	g.waiters = slices.DeleteFunc(g.waiters, func(x *waiter) bool { return x == w })
	g.bytes -= int64(len(w.body) + envelope.RequestHeaderBytes)
	if len(g.waiters) == 0 {
		l := c.lanes[subject]
		l.pending = slices.DeleteFunc(l.pending, func(x *group) bool { return x == g })
	}
	return true
}

// completed is called when a publish of subject ended: it launches the
// waiting groups that now have room, each publishing in its own goroutine.
func (c *coalescer) completed(subject string) {
	c.mu.Lock()
	l := c.lanes[subject]
	l.inflight--
	var launch []*group
	for l.inflight < PublishesPerSubject && len(l.pending) > 0 {
		g := l.pending[0]
		l.pending[0] = nil
		l.pending = l.pending[1:]
		g.launched = true
		l.inflight++
		launch = append(launch, g)
	}
	if l.inflight == 0 {
		delete(c.lanes, subject)
	}
	c.mu.Unlock()
	for _, g := range launch {
		go c.fly(subject, g)
	}
}

// fly publishes a launched group and answers its waiters. The bodies are
// copied, since a waiter that gives up (its request cancelled) reuses its
// own once the copy is made; the copy is charged to the bytes in flight
// (SLUICE_MAX_INFLIGHT_BYTES) until the publish ends, and when they are not
// there every waiter is answered as a body that would pass them is.
func (c *coalescer) fly(subject string, g *group) {
	defer c.completed(subject)
	defer close(g.done)
	if err := c.h.budget.Reserve(g.bytes); err != nil {
		close(g.built)
		g.err = err
		return
	}
	defer c.h.budget.Unreserve(g.bytes)
	msg := nats.NewMsg(subject)
	if len(g.waiters) == 1 {
		g.meta = g.waiters[0].meta
		g.meta.BatchID = envelope.NewBatchID()
		msg.Data = append(make([]byte, 0, g.bytes), g.waiters[0].body...)
	} else {
		reqs := make([]envelope.Request, len(g.waiters))
		data := make([]byte, 0, g.bytes)
		for i, w := range g.waiters {
			w.index = i
			reqs[i] = envelope.Request{Events: w.meta.EventCount, ReceivedAt: w.meta.ReceivedAt}
			data = append(data, w.body...)
			if len(w.body) > 0 && w.body[len(w.body)-1] != '\n' {
				data = append(data, '\n')
			}
		}
		g.meta = envelope.Coalesce(g.waiters[0].meta.Tenant, reqs)
		msg.Data = data
	}
	g.meta.SetHeaders(msg.Header)
	close(g.built)
	c.h.cfg.Metrics.requestsPerMessage.Observe(float64(len(g.waiters)))
	// Bounded by PublishTimeout (see publish): nobody cancels a message
	// that holds other requests' events.
	g.ack, g.err = c.h.publish(context.Background(), msg)
}
