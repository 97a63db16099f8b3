package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// consumerGetter is the JetStream call the LagWatcher makes.
type consumerGetter interface {
	Consumer(ctx context.Context, stream, consumer string) (jetstream.Consumer, error)
}

// LagWatcher reads how many messages the workers' consumer has not been
// delivered yet (its pending count), at most once per interval, so the
// handler can answer 503 while the stream still has room, before it fills.
type LagWatcher struct {
	js               consumerGetter
	stream, consumer string
	max              int64
	every            time.Duration
	log              *slog.Logger
	lag              atomic.Int64 // last reading; 0 when unknown
}

// NewLagWatcher watches consumer of stream; Over reports a lag above max.
// Call Run to keep the reading fresh.
func NewLagWatcher(js consumerGetter, stream, consumer string, max int64, every time.Duration, log *slog.Logger) *LagWatcher {
	return &LagWatcher{js: js, stream: stream, consumer: consumer, max: max, every: every, log: log}
}

// Over returns the last lag read and whether it is above the limit.
func (l *LagWatcher) Over() (lag int64, over bool) {
	lag = l.lag.Load()
	return lag, lag > l.max
}

// Run reads the lag every interval until ctx ends. A reading that fails
// (broker down, consumer not created yet) counts as no lag: the broker's own
// state refuses requests then, and a missing consumer must not stop ingest.
func (l *LagWatcher) Run(ctx context.Context) error {
	t := time.NewTicker(l.every)
	defer t.Stop()
	for {
		l.read(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (l *LagWatcher) read(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, l.every)
	defer cancel()
	c, err := l.js.Consumer(ctx, l.stream, l.consumer)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			l.log.Debug("read consumer lag", "stream", l.stream, "consumer", l.consumer, "err", err)
		}
		l.lag.Store(0)
		return
	}
	l.lag.Store(int64(c.CachedInfo().NumPending))
}
