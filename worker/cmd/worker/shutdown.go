package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	rungroup "github.com/oklog/run"

	"github.com/sluice-ingest/sluice/worker/internal/manifest"
	"github.com/sluice-ingest/sluice/worker/internal/partition"
	"github.com/sluice-ingest/sluice/worker/internal/pipeline"
)

// actors is the worker's run.Group. The group interrupts actors in the
// order they are added: the admin server stops, then the pipeline drains
// and the worker leaves (see runPipeline), while the side jobs stop. NATS
// closes after the group returns (deferred in run).
func (w *worker) actors(ctx context.Context) *rungroup.Group {
	var g rungroup.Group
	g.Add(rungroup.SignalHandler(ctx, os.Interrupt, syscall.SIGTERM))
	g.Add(w.admin.Serve, func(error) {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = w.admin.Shutdown(sctx)
	})
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return w.consume(ctx) }, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return w.sideJobs(ctx) }, func(error) { cancel() })
	}
	return &g
}

// runPipeline runs p with the membership, the manifest tracker and the
// stall watcher until ctx ends. Shutdown order: fetching stops and every
// cut object is stored and acked (or Nak'ed) by p.Run; only then does the worker
// leave, so the next owners of its partitions start after its last ack.
func (w *worker) runPipeline(ctx context.Context, p *pipeline.Pipeline, member *partition.Member, tracker *manifest.Tracker) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tracker.Attach(p)
	var wg sync.WaitGroup
	wg.Go(func() { _ = member.Run(ctx) })
	wg.Go(func() { _ = tracker.Run(ctx) })
	wg.Go(func() { _ = p.WatchStalls(ctx, 2*w.s.ackWait) })
	err := p.Run(ctx)
	cancel()
	wg.Wait()
	member.Leave(context.WithoutCancel(ctx))
	return err
}

// stopped is run's result: nil when a signal ended the group.
func stopped(err error, log *slog.Logger) error {
	if errors.Is(err, rungroup.ErrSignal) {
		log.Info("stopped", "reason", err)
		return nil
	}
	return err
}
