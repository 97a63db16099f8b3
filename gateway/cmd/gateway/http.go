package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// timeouts are the HTTP server's defences against slow clients.
type timeouts struct {
	readHeader, read, write, idle time.Duration
}

// defaultTimeouts: a client has 5s to send its headers and 30s for the
// whole request, the answer must be written within the read time plus the
// publish time, and an idle keep-alive connection is closed after 2m.
func defaultTimeouts(publish time.Duration) timeouts {
	return timeouts{readHeader: 5 * time.Second, read: 30 * time.Second, write: 35*time.Second + publish, idle: 2 * time.Minute}
}

func newHTTPServer(h http.Handler, t timeouts, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.readHeader,
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// serveHTTP serves the ingest API, over TLS when a certificate is set,
// until shutdown.
func (gw *gateway) serveHTTP() error {
	gw.log.Info("gateway listening", "http", gw.ln.Addr().String(), "tls", gw.certs != nil, "admin", gw.admin.Addr(), "nats", gw.s.nats.URL)
	var err error
	if gw.certs != nil {
		err = gw.srv.ServeTLS(gw.ln, "", "")
	} else {
		err = gw.srv.Serve(gw.ln)
	}
	if !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}
