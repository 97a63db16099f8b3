package pipeline

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// WatchLag sets the consumer pending gauge from the infos of every
// consumer of the events stream (one per partition and the unpartitioned
// one), every interval, until ctx ends: the sum of their messages not yet
// delivered plus delivered and not yet acknowledged. A listing that fails
// leaves the gauge as it was.
func WatchLag(ctx context.Context, js jetstream.JetStream, streamName string, every time.Duration, m *Metrics) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ictx, cancel := context.WithTimeout(ctx, every)
		if lag, ok := streamLag(ictx, js, streamName); ok {
			m.pending.Set(float64(lag))
		}
		cancel()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func streamLag(ctx context.Context, js jetstream.JetStream, streamName string) (uint64, bool) {
	st, err := js.Stream(ctx, streamName)
	if err != nil {
		return 0, false
	}
	l := st.ListConsumers(ctx)
	var lag uint64
	for info := range l.Info() {
		lag += info.NumPending + uint64(info.NumAckPending)
	}
	return lag, l.Err() == nil
}
