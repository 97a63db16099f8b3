package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluice-ingest/sluice/gateway/internal/auth"
	"github.com/sluice-ingest/sluice/gateway/internal/ratelimit"
)

// notifyHangup catches SIGHUP. It is called before anything is served: an
// unhandled SIGHUP would end the process.
func notifyHangup() chan os.Signal {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup
}

// reloadOnHangup reloads the API keys file and the TLS certificate. Each
// that fails to load is kept as it was; requests are served throughout,
// each with one key set or the other.
func reloadOnHangup(s settings, authn *auth.Authenticator, certs *certificate, log *slog.Logger) {
	if s.authMode == "keys" {
		keys, err := auth.LoadKeysFile(s.keysFile, ratelimit.ValidPolicy)
		if err != nil {
			log.Error("SIGHUP: keeping the previous API keys", "err", err)
		} else {
			authn.Replace(keys)
			log.Info("SIGHUP: api keys reloaded", "keys", keys.Len())
		}
	}
	if certs != nil {
		if err := certs.load(); err != nil {
			log.Error("SIGHUP: keeping the previous TLS certificate", "err", err)
		} else {
			log.Info("SIGHUP: TLS certificate reloaded")
		}
	}
}

// onSignal calls fn for every signal on ch until ctx ends.
func onSignal(ctx context.Context, ch <-chan os.Signal, fn func()) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
			fn()
		}
	}
}
