package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// Fetching. A fetch asks for half the budget's room and reserves what it may
// deliver, so the consumers read share the room; an idle consumer, or one
// with less room than a largest message, fetches one message and reserves
// nothing. A replicated consumer is fetched by count alone: with a byte
// limit its "409 Batch Completed" status can overtake the last messages,
// and the partition stalls.

// fetchReq is one fetch: how many messages, the byte limit (0: none) and
// what it reserves in the budget.
type fetchReq struct {
	msgs     int
	maxBytes int
	reserve  int64
}

// nextFetch sizes s's next fetch with room left in the budget.
func (p *Pipeline) nextFetch(room int64, s *source) fetchReq {
	largest := int64(p.cfg.MaxMessageBytes + fetchSlack)
	half := min(room/2, 1<<30)
	if half < largest || s.idle {
		return fetchReq{msgs: 1}
	}
	if s.countOnly {
		n := min(half/(largest+msgOverhead), int64(p.cfg.FetchMessages))
		if n <= 1 {
			return fetchReq{msgs: 1}
		}
		return fetchReq{msgs: int(n), reserve: n * (int64(p.cfg.MaxMessageBytes) + msgOverhead)}
	}
	// Half the half for bodies, half for the per-message overhead.
	n := min(max(half/msgOverhead, 1), int64(p.cfg.FetchMessages))
	maxBytes := max(half, largest)
	return fetchReq{msgs: int(n), maxBytes: int(maxBytes), reserve: min(maxBytes, n*int64(p.cfg.MaxMessageBytes)) + n*msgOverhead}
}

// fetchFrom fetches from one consumer while the budget has room and the
// worker can write, checks the messages and sends the good ones to out,
// until ctx ends. Checking here, off Run's goroutine, runs it in parallel
// with gathering. Redelivered messages go to their lookups, which send them
// to out.
func (p *Pipeline) fetchFrom(ctx context.Context, s *source, out chan<- []object.Item) error {
	backoff := p.cfg.RetryMin
	for {
		s.progress.waiting.Store(true)
		room := p.budget.waitRoom(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if !p.waitWritable(ctx) {
			return nil
		}
		s.progress.waiting.Store(false)
		if s.progress.takeFresh() {
			s.idle = false
		}
		req := p.nextFetch(room, s)
		res := p.budget.reserve(req.reserve)
		opts := append([]jetstream.FetchOpt{jetstream.FetchMaxWait(time.Second)}, s.opts...)
		if req.maxBytes > 0 {
			opts = append(opts, jetstream.FetchMaxBytes(req.maxBytes))
		}
		mb, err := s.cons.Fetch(req.msgs, opts...)
		got := 0
		if err == nil {
			// Items go to Run in slices of what has arrived (at most
			// handoff): one channel operation per slice, not per message.
			var (
				items []object.Item
				last  jetstream.Msg
			)
			in := mb.Messages()
			for m := range in {
				got++
				last = m
				res.take(heldBytes(m.Data()))
				if it, ok := p.check(ctx, m, s.name); ok {
					items = append(items, it)
				}
				if len(items) > 0 && (len(items) >= handoff || len(in) == 0) {
					out <- items
					items = nil
				}
			}
			if len(items) > 0 {
				out <- items
			}
			if last != nil {
				s.progress.received(last)
			}
			err = mb.Error()
		}
		res.end()
		s.idle = got == 0
		switch {
		case err == nil || errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded):
			backoff = p.cfg.RetryMin
			continue
		case errors.Is(err, jetstream.ErrBatchCompleted), errors.Is(err, jetstream.ErrMaxBytesExceeded):
			// Only a replicated consumer lets the client see these
			// (see above): fetch it by count from now on.
			if !s.countOnly {
				s.countOnly = true
				p.cfg.Log.Warn("consumer is replicated: fetching by message count, without a byte limit", "consumer", s.name, "err", err)
			}
			continue
		case errors.Is(err, jetstream.ErrPinIDMismatch):
			// Another worker holds the partition's pin now (this one
			// stopped pulling for longer than PinnedTTL); the client
			// forgets its pin, and the next fetch waits its turn.
			continue
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			p.inc.deleted(p.inc.current()) // perhaps with its stream: settle nothing of it
			return fmt.Errorf("fetch from %s: %w", s.name, err)
		}
		p.cfg.Log.Warn("fetch failed; retrying", "consumer", s.name, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, p.cfg.RetryMax)
	}
}

// msgOverhead is what the budget charges for one message beside its body:
// its headers, the client's message structs and the object item. Measured
// at about 1 KiB; without it, small messages would hold several times the
// bound.
const msgOverhead = 1024

// fetchSlack is room in a fetch beside the largest message's headers and
// body: the server counts each message's subject and ack reply subject
// against the fetch's byte limit too. A subject fits the publisher's
// control line (4 KiB by default); an ack reply holds the stream and
// consumer names and a few numbers.
const fetchSlack = 5 << 10

// handoff is the most items the fetch goroutine hands to Run at once.
const handoff = 256

func heldBytes(body []byte) int64 { return int64(len(body)) + msgOverhead }

// held is what the budget charges for an object's messages.
func held(bt *object.Object) int64 { return bt.Bytes + int64(len(bt.Items))*msgOverhead }
