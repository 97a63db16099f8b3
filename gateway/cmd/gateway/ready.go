package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/stream"
)

// readiness is /readyz: ready while NATS is connected, the stream exists,
// and the process is not stopping.
type readiness struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	stream   string
	ensured  atomic.Bool
	stopping atomic.Bool
}

func (r *readiness) check(ctx context.Context) error {
	switch {
	case r.stopping.Load():
		return errors.New("shutting down")
	case !r.nc.IsConnected():
		return fmt.Errorf("nats not connected (%s)", r.nc.Status())
	case !r.ensured.Load():
		return errors.New("stream not ensured yet")
	}
	if _, err := r.js.Stream(ctx, r.stream); err != nil {
		return fmt.Errorf("stream %s: %w", r.stream, err)
	}
	return nil
}

// ensureStreams creates (or updates) the streams, the receipts bucket and
// the counter stream, retrying while NATS is unreachable; then it caps the
// decoded limit to the broker's and marks the gateway ready. It waits for
// ctx to end.
func (gw *gateway) ensureStreams(ctx context.Context) error {
	if err := stream.Retry(ctx, gw.log, "ensure streams", func(ctx context.Context) error {
		if err := stream.EnsureStreams(ctx, gw.js, gw.streams); err != nil {
			return err
		}
		return ensureAccounting(ctx, gw.js, gw.s.nats)
	}); err != nil {
		return nil // interrupted
	}
	gw.capDecoded() // connected now
	gw.ready.ensured.Store(true)
	gw.log.Info("streams ready", "stream", gw.streams.EventsConfig().Name, "dlq", stream.DLQStream)
	<-ctx.Done()
	return nil
}
