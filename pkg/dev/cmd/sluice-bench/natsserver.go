package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
)

// runNATS is `sluice-bench nats`: the dev stack's nats-server (the
// nats-server/v2 library with JetStream, as embedded by `make run` and the
// tests) in a process of its own, so the benchmark measures its CPU and
// memory apart from everything else. It serves until SIGTERM or SIGINT.
func runNATS(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice-bench nats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts devstack.NATSOptions
	fs.IntVar(&opts.Port, "port", 0, "client port on 127.0.0.1")
	fs.StringVar(&opts.StoreDir, "store", "", "JetStream store directory")
	fs.StringVar(&opts.Sync, "sync", devstack.DefaultNATSSync, "JetStream sync_interval: a duration, or always (fsync every write)")
	fs.IntVar(&opts.ProfPort, "prof-port", 0, "serve /debug/pprof on 127.0.0.1 at this port (0: off)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if opts.Port == 0 || opts.StoreDir == "" {
		return fmt.Errorf("nats: -port and -store are required")
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	n, err := devstack.StartNATS(opts)
	if err != nil {
		return err
	}
	<-ctx.Done()
	n.Shutdown()
	return nil
}
