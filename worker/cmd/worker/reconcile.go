package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-ingest/sluice/pkg/admin"
)

// Reconciliation watched by the worker: every reconcileEvery it counts the
// closed tenant-hours of the last reconcileHours whose counters do not add
// up (what `sluice reconcile` reports, for every tenant) into a gauge, so
// an alert can page on a mismatch instead of someone running the command.
const (
	reconcileEvery = 5 * time.Minute
	reconcileHours = 6
	reconcileGrace = 2 * time.Minute
)

// newReconcileGauge registers the mismatch gauge.
func newReconcileGauge(reg prometheus.Registerer) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_worker_reconcile_mismatched_hours",
		Help: "Closed tenant-hours of the last 6 whose events accepted are not all landed or dead-lettered (read every 5 minutes; see sluice reconcile).",
	})
	reg.MustRegister(g)
	return g
}

// watchReconcile sets g until ctx ends. A failed read is logged and tried
// again at the next tick; it never stops the worker.
func watchReconcile(ctx context.Context, js jetstream.JetStream, events string, g prometheus.Gauge, log *slog.Logger) error {
	t := time.NewTicker(reconcileEvery)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		n, err := admin.Mismatched(rctx, js, events, reconcileHours, time.Now(), reconcileGrace)
		cancel()
		switch {
		case err == nil:
			g.Set(float64(n))
		case ctx.Err() == nil && !errors.Is(err, admin.ErrNoCounters):
			log.Warn("reconcile counters", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
