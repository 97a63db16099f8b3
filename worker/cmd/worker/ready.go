package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/sluice-ingest/sluice/worker/internal/pipeline"
)

// readiness is /readyz: ready while NATS is connected, the pipeline
// consumes and it can write to S3.
type readiness struct {
	nc        *nats.Conn
	consuming atomic.Pointer[pipeline.Pipeline]
}

func (r *readiness) check(context.Context) error {
	p := r.consuming.Load()
	switch {
	case !r.nc.IsConnected():
		return fmt.Errorf("nats not connected (%s)", r.nc.Status())
	case p == nil:
		return errors.New("consumer not started")
	}
	if err := p.Writable(); err != nil {
		return fmt.Errorf("cannot write to S3: %w", err)
	}
	return nil
}
