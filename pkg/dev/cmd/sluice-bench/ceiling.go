package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/sluice-ingest/sluice/pkg/dev/loadgen"
)

// runCeiling is `sluice-bench ceiling`: loadgen.Ceiling, the most any Go
// ingest server can do on this machine, to compare the others with.
func runCeiling(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice-bench ceiling", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "listen address (127.0.0.1:port)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return serve(ctx, *addr, http.HandlerFunc(loadgen.Ceiling))
}

// serve runs h on addr until SIGTERM or SIGINT.
func serve(ctx context.Context, addr string, h http.Handler) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stop %s: %w", addr, err)
	}
	return nil
}
