package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-ingest/sluice/gateway/internal/api"
	"github.com/sluice-ingest/sluice/gateway/internal/auth"
	"github.com/sluice-ingest/sluice/gateway/internal/ratelimit"
	"github.com/sluice-ingest/sluice/pkg/ledger"
	"github.com/sluice-ingest/sluice/pkg/receipts"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/pkg/telemetry"
)

// gateway is the wired process: the parts run builds and the actors serve.
type gateway struct {
	s          settings
	log        *slog.Logger
	js         jetstream.JetStream
	streams    stream.Config
	authn      *auth.Authenticator
	certs      *certificate // nil: plain HTTP
	ready      *readiness
	admin      *telemetry.Admin
	lag        *api.LagWatcher // nil: SLUICE_MAX_CONSUMER_LAG is off
	tally      *ledger.Tally
	capDecoded func()
	ln         net.Listener
	srv        *http.Server
}

// newAuthenticator loads the API keys, or admits every request as tenant
// default when SLUICE_AUTH=none.
func newAuthenticator(s settings, log *slog.Logger) (*auth.Authenticator, error) {
	if s.authMode != "keys" {
		log.Warn("authentication is off (SLUICE_AUTH=none): every request is tenant default")
		return auth.NoAuth(), nil
	}
	keys, err := auth.LoadKeysFile(s.keysFile, ratelimit.ValidPolicy)
	if err != nil {
		return nil, fmt.Errorf("SLUICE_API_KEYS_FILE: %w", err)
	}
	log.Info("api keys loaded", "keys", keys.Len())
	return auth.NewAuthenticator(keys), nil
}

// connect opens the NATS connection and its JetStream publisher.
func connect(s settings, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := stream.Connect(s.nats.URL, s.nats.Creds, "sluice-gateway", log)
	if err != nil {
		return nil, nil, err
	}
	// Pending acks are bounded like the handler's in-flight requests, and a
	// future nobody waits for any more is dropped after the publish timeout.
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(s.maxInflight),
		jetstream.WithPublishAsyncTimeout(s.publishTimeout))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// wire builds the ingest handler on the publisher and the limiter, the
// admin server and the HTTP listener.
func wire(s settings, log *slog.Logger, reg *prometheus.Registry, nc *nats.Conn, js jetstream.JetStream,
	authn *auth.Authenticator, certs *certificate, limits *ratelimit.Limiter) (*gateway, error) {
	gw := &gateway{s: s, log: log, js: js, streams: s.nats.Config(), authn: authn, certs: certs}
	events := gw.streams.EventsConfig().Name
	gw.ready = &readiness{nc: nc, js: js, stream: events}
	var err error
	if gw.admin, err = telemetry.NewAdmin(s.adminAddr, reg, gw.ready.check, s.pprof); err != nil {
		return nil, err
	}
	if s.maxConsumerLag > 0 {
		gw.lag = api.NewLagWatcher(js, events, s.consumer, int64(s.maxConsumerLag), time.Second, log)
	}
	gw.tally = ledger.NewTally(js, log)
	handler := api.NewHandler(api.Config{
		Auth:           authn,
		Publisher:      js,
		Limits:         s.limits,
		PublishTimeout: s.publishTimeout,
		MaxInflight:    s.maxInflight,
		Connected:      nc.IsConnected,
		Lag:            gw.lag,
		Metrics:        api.NewMetrics(reg),
		Log:            log,
		// A request that costs 1 is limited before its body is decoded.
		RateLimit:           limits,
		RateLimitBeforeBody: !limits.WeighsEvents(),
		Receipts:            receipts.NewReader(js),
		Tally:               gw.tally,
		Coalesce:            s.coalesce == "on",
	})
	gw.capDecoded = capToBroker(nc, handler, s.limits.MaxDecodedBytes, log)
	if gw.ln, err = net.Listen("tcp", s.httpAddr); err != nil {
		return nil, fmt.Errorf("listen on SLUICE_HTTP_ADDR %s: %w", s.httpAddr, err)
	}
	gw.srv = newHTTPServer(handler, defaultTimeouts(s.publishTimeout), log)
	if certs != nil {
		gw.srv.TLSConfig = certs.config()
	}
	return gw, nil
}

// capToBroker keeps the decoded limit within the broker's max_payload, so a
// body the broker would refuse is refused once its decoded bytes pass the
// message size. It applies it on every reconnection and returns the
// function to apply it once connected.
func capToBroker(nc *nats.Conn, h *api.Handler, configured int64, log *slog.Logger) func() {
	apply := func(nc *nats.Conn) {
		mp := nc.MaxPayload()
		if mp <= 0 {
			return
		}
		if limit := h.CapDecodedBytes(mp); limit < configured {
			log.Warn("SLUICE_MAX_DECODED_BYTES is over the NATS max_payload: bodies are limited to what it takes", "max_payload", mp, "decoded_limit", limit)
		}
	}
	reconnected := nc.Opts.ReconnectedCB
	nc.SetReconnectHandler(func(nc *nats.Conn) {
		if reconnected != nil {
			reconnected(nc)
		}
		apply(nc)
	})
	return func() { apply(nc) }
}
