package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/sluice-ingest/sluice/gateway/internal/ratelimit"
	"github.com/sluice-ingest/sluice/pkg/config"
	"github.com/sluice-ingest/sluice/pkg/telemetry"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// run is the whole process: settings, then the parts wired in dependency
// order, then the actors until a signal or a failure (see actors for the
// shutdown order).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s, err := parseSettings(args, getenv, stdout)
	if err != nil {
		return err
	}
	log, err := s.log.Logger(stderr, "gateway")
	if err != nil {
		return err
	}
	tuneMemory(s, getenv, log)

	authn, err := newAuthenticator(s, log)
	if err != nil {
		return err
	}
	certs, err := newCertificate(s)
	if err != nil {
		return err
	}
	nc, js, err := connect(s, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	reg := telemetry.NewRegistry()
	limits, err := ratelimit.New(s.rate, reg, log)
	if err != nil {
		return err
	}
	defer limits.Close()
	gw, err := wire(s, log, reg, nc, js, authn, certs, limits)
	if err != nil {
		return err
	}

	hup := notifyHangup()
	defer signal.Stop(hup)
	return stopped(gw.actors(ctx, hup).Run(), log)
}
