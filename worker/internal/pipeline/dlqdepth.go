package pipeline

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/stream"
)

// WatchDLQ sets the dead-letter stream's depth gauges (messages and bytes)
// from the stream info every interval, until ctx ends.
func WatchDLQ(ctx context.Context, js jetstream.JetStream, every time.Duration, m *Metrics) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ictx, cancel := context.WithTimeout(ctx, every)
		if st, err := js.Stream(ictx, stream.DLQStream); err == nil {
			info := st.CachedInfo() // js.Stream has just fetched it
			m.dlqMessages.Set(float64(info.State.Msgs))
			m.dlqBytes.Set(float64(info.State.Bytes))
		}
		cancel()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
