package main

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sluice-ingest/sluice/worker/internal/pipeline"
)

// sideJobs watches consumer lag and the dead-letter stream's depth, aborts
// multipart uploads abandoned by a killed worker and reconciles the
// counters, once the streams exist and until ctx ends. A job that fails
// stops the others and the worker, rather than leaving it running without,
// say, its lag metric.
func (w *worker) sideJobs(ctx context.Context) error {
	select {
	case <-w.ensured:
	case <-ctx.Done():
		return nil
	}
	events := w.streams.EventsConfig().Name
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return pipeline.WatchLag(ctx, w.js, events, 5*time.Second, w.metrics) })
	eg.Go(func() error { return pipeline.WatchDLQ(ctx, w.js, 5*time.Second, w.metrics) })
	eg.Go(func() error { cleanUploads(ctx, w.sink, w.log); return nil })
	eg.Go(func() error { return watchReconcile(ctx, w.js, events, w.mismatched, w.log) })
	return eg.Wait()
}
