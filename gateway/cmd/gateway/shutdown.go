package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"syscall"
	"time"

	rungroup "github.com/oklog/run"
)

// actors is the gateway's run.Group. The group interrupts actors in the
// order they are added, which is the shutdown order: the HTTP server's
// graceful stop (see shutdown), then the tally's last flush of what those
// requests accepted, then the admin server (/readyz), then the watchers.
// NATS and the limiter close after the group returns (deferred in run).
func (gw *gateway) actors(ctx context.Context, hup <-chan os.Signal) *rungroup.Group {
	var g rungroup.Group
	g.Add(rungroup.SignalHandler(ctx, os.Interrupt, syscall.SIGTERM))
	g.Add(gw.serveHTTP, func(error) {
		shutdown(gw.srv, gw.ready, gw.s.shutdownDelay, gw.s.shutdownTimeout, gw.log)
	})
	{
		ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		g.Add(func() error { return gw.tally.Run(ctx, tallyInterval) }, func(error) { cancel() })
	}
	g.Add(gw.admin.Serve, func(error) {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = gw.admin.Shutdown(sctx)
	})
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return gw.ensureStreams(ctx) }, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(ctx)
		reload := func() { reloadOnHangup(gw.s, gw.authn, gw.certs, gw.log) }
		g.Add(func() error { return onSignal(ctx, hup, reload) }, func(error) { cancel() })
	}
	if gw.lag != nil {
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return gw.lag.Run(ctx) }, func(error) { cancel() })
	}
	return &g
}

// shutdown is the HTTP server's graceful stop: /readyz answers 503 so load
// balancers stop sending; after delay the listener and idle connections
// close; requests in flight get their 202 or 503 (parseSettings keeps the
// publish timeout shorter than timeout minus delay); at the timeout the
// rest is cut.
func shutdown(srv *http.Server, ready *readiness, delay, timeout time.Duration, log *slog.Logger) {
	ready.stopping.Store(true)
	// Every answer closes its connection from here on: a request sent on an
	// idle keep-alive connection just as Shutdown closes it is one a client
	// cannot tell from a dropped request.
	srv.SetKeepAlivesEnabled(false)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	log.Info("stopping: /readyz answers 503", "delay", delay, "timeout", timeout)
	select {
	case <-time.After(delay):
	case <-ctx.Done():
	}
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("requests still in flight at the shutdown timeout; closing them", "err", err)
		_ = srv.Close()
	}
}

// stopped is run's result: nil when a signal ended the group.
func stopped(err error, log *slog.Logger) error {
	var sig *rungroup.SignalError
	if errors.As(err, &sig) {
		log.Info("stopped", "signal", sig.Signal.String())
		return nil
	}
	return err
}
