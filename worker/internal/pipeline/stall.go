package pipeline

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stalled consumers: a safety net whatever the cause. A consumer is stalled
// when its fetch goroutine kept asking (not held back) for longer than a
// bound and got nothing while the server had messages for it. The watch
// counts it (sluice_worker_partition_stalls_total), logs why, unpins the
// consumer so the server pins the next pull afresh, and makes the next
// fetch a full one.

// progress is what a source's fetch goroutine tells the stall watch.
type progress struct {
	lastMsg atomic.Int64  // unix ns of the last fetch that delivered (or of the start)
	seq     atomic.Uint64 // consumer sequence of the last message delivered here
	waiting atomic.Bool   // held back by the budget or the write check
	fresh   atomic.Bool   // the next fetch must be a full one
}

func (pr *progress) start(now time.Time) { pr.lastMsg.Store(now.UnixNano()) }

func (pr *progress) received(last jetstream.Msg) {
	pr.lastMsg.Store(time.Now().UnixNano())
	if md, err := last.Metadata(); err == nil {
		pr.seq.Store(md.Sequence.Consumer)
	}
}

func (pr *progress) takeFresh() bool { return pr.fresh.Swap(false) }

// quiet is how long nothing was delivered here.
func (pr *progress) quiet(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, pr.lastMsg.Load()))
}

// stalled is whether the consumer whose info is info stalled here.
func (pr *progress) stalled(info *jetstream.ConsumerInfo, now time.Time, bound time.Duration) bool {
	if pr.waiting.Load() || pr.quiet(now) < bound {
		return false
	}
	lost := info.NumAckPending > 0 && info.Delivered.Consumer > pr.seq.Load()
	return info.NumPending > 0 || lost
}

// consumerInfo is the call the stall watch makes on a consumer
// (jetstream.Consumer has it).
type consumerInfo interface {
	Info(ctx context.Context) (*jetstream.ConsumerInfo, error)
}

// WatchStalls checks every consumer read for a stall of more than bound,
// every quarter of it (at least every second), until ctx ends.
func (p *Pipeline) WatchStalls(ctx context.Context, bound time.Duration) error {
	t := time.NewTicker(max(bound/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for _, s := range p.sources.list() {
			p.checkStall(ctx, s, bound)
		}
	}
}

func (p *Pipeline) checkStall(ctx context.Context, s *source, bound time.Duration) {
	c, ok := s.cons.(consumerInfo)
	if !ok {
		return
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := c.Info(ictx)
	if err != nil {
		return // NATS is not answering: that is not this consumer's stall
	}
	now := time.Now()
	if !s.progress.stalled(info, now, bound) {
		return
	}
	p.cfg.Metrics.stalls.Inc()
	p.cfg.Log.Warn("consumer made no progress; unpinning it and fetching afresh",
		"consumer", s.name, "for", s.progress.quiet(now).Round(time.Millisecond),
		"pending", info.NumPending, "ack_pending", info.NumAckPending,
		"delivered_seq", info.Delivered.Consumer, "received_seq", s.progress.seq.Load())
	s.progress.start(now)
	s.progress.fresh.Store(true)
	if info.Config.PriorityPolicy != jetstream.PriorityPolicyPinned || len(info.Config.PriorityGroups) == 0 {
		return
	}
	st, err := p.cfg.JS.Stream(ictx, info.Stream)
	if err == nil {
		err = st.UnpinConsumer(ictx, s.name, info.Config.PriorityGroups[0])
	}
	if err != nil {
		p.cfg.Log.Warn("unpin stalled consumer", "consumer", s.name, "err", err)
	}
}
