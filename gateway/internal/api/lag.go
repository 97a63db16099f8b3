package api

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// streamGetter is the JetStream call the LagWatcher makes.
type streamGetter interface {
	Stream(ctx context.Context, stream string) (jetstream.Stream, error)
}

// LagWatcher reads how many messages the workers' consumers have not been
// delivered yet (the sum of their pending counts: the consumer itself and
// its partitions' consumers, <consumer>-pNN), at most once per interval, so
// the handler can answer 503 while the stream still has room, before it
// fills.
type LagWatcher struct {
	js               streamGetter
	stream, consumer string
	max              int64
	every            time.Duration
	log              *slog.Logger
	lag              atomic.Int64 // last reading; 0 when unknown
}

// NewLagWatcher watches consumer of stream; Over reports a lag above max.
// Call Run to keep the reading fresh.
func NewLagWatcher(js streamGetter, stream, consumer string, max int64, every time.Duration, log *slog.Logger) *LagWatcher {
	return &LagWatcher{js: js, stream: stream, consumer: consumer, max: max, every: every, log: log}
}

// Over returns the last lag read and whether it is above the limit.
func (l *LagWatcher) Over() (lag int64, over bool) {
	lag = l.lag.Load()
	return lag, lag > l.max
}

// Run reads the lag every interval until ctx ends. A reading that fails
// (broker down, consumer not created yet) counts as no lag: the broker's own
// state refuses requests then, and a missing consumer must not stop api.
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
	var lag int64
	st, err := l.js.Stream(ctx, l.stream)
	if err == nil {
		cl := st.ListConsumers(ctx)
		for info := range cl.Info() {
			if info.Name == l.consumer || strings.HasPrefix(info.Name, l.consumer+"-p") {
				lag += int64(info.NumPending)
			}
		}
		err = cl.Err()
	}
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			l.log.Debug("read consumer lag", "stream", l.stream, "consumer", l.consumer, "err", err)
		}
		l.lag.Store(0)
		return
	}
	l.lag.Store(lag)
}
