package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sluice-ingest/sluice/gateway/internal/api"
	"github.com/sluice-ingest/sluice/gateway/internal/body"
	"github.com/sluice-ingest/sluice/gateway/internal/ratelimit"
	"github.com/sluice-ingest/sluice/pkg/config"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/pkg/telemetry"
)

type settings struct {
	nats                stream.Settings
	log                 telemetry.LogSettings
	adminAddr, httpAddr string
	authMode, keysFile  string
	tlsCert, tlsKey     string
	limits              body.Limits
	maxInflight         int
	consumer            string
	maxConsumerLag      int
	publishTimeout      time.Duration
	shutdownTimeout     time.Duration
	shutdownDelay       time.Duration
	pprof               bool
	coalesce            string
	rate                ratelimit.Settings
}

func parseSettings(args []string, getenv func(string) string, stdout io.Writer) (settings, error) {
	var s settings
	cs := config.New("gateway", getenv)
	s.nats.Declare(cs)
	s.log.Declare(cs)
	cs.String(&s.adminAddr, "SLUICE_ADMIN_ADDR", ":9090", "admin listen address: /healthz, /readyz, /metrics")
	cs.String(&s.httpAddr, "SLUICE_HTTP_ADDR", ":8080", "ingest API listen address")
	cs.String(&s.tlsCert, "SLUICE_TLS_CERT", "", "TLS certificate (PEM) for the ingest API; with SLUICE_TLS_KEY it serves HTTPS and HTTP/2")
	cs.String(&s.tlsKey, "SLUICE_TLS_KEY", "", "TLS private key (PEM) for SLUICE_TLS_CERT")
	cs.Enum(&s.authMode, "SLUICE_AUTH", "keys", []string{"keys", "none"}, "keys: API keys from SLUICE_API_KEYS_FILE; none: every request is tenant default (development only)")
	cs.String(&s.keysFile, "SLUICE_API_KEYS_FILE", "", "API keys file: one `key tenant [policy]` per line; reloaded on SIGHUP")
	cs.Bytes(&s.limits.MaxBodyBytes, "SLUICE_MAX_BODY_BYTES", "1MiB", 1, "largest request body on the wire")
	cs.Bytes(&s.limits.MaxDecodedBytes, "SLUICE_MAX_DECODED_BYTES", "4MiB", 1, "largest request body after decompression; lowered to the NATS max_payload (less 1 KiB for headers) when that is smaller")
	cs.Bytes(&s.limits.MaxInflightBytes, "SLUICE_MAX_INFLIGHT_BYTES", "256MiB", 1, "decoded bytes (output buffers and zstd windows) all requests in flight may hold; a body that would pass it is answered 503 overloaded")
	cs.Int(&s.limits.MaxEvents, "SLUICE_MAX_EVENTS", body.DefaultMaxEvents, 1, "most events in one request")
	cs.Int(&s.limits.MaxDepth, "SLUICE_MAX_DEPTH", body.DefaultMaxDepth, 1, "deepest nesting of objects and arrays in a body (the {\"events\":[...]} wrapper takes 2)")
	cs.Int(&s.maxInflight, "SLUICE_MAX_INFLIGHT", api.DefaultMaxInflight, 1, "requests decoded or published at once; one more is answered 503 overloaded")
	cs.String(&s.consumer, "SLUICE_CONSUMER", stream.Consumer, "the workers' durable consumer, whose lag SLUICE_MAX_CONSUMER_LAG watches")
	cs.Int(&s.maxConsumerLag, "SLUICE_MAX_CONSUMER_LAG", 0, 0, "answer 503 backlogged while the workers' consumer has more messages pending than this (0 = off)")
	cs.Duration(&s.publishTimeout, "SLUICE_PUBLISH_TIMEOUT", api.DefaultPublishTimeout, time.Millisecond, "longest wait for JetStream to acknowledge a publish")
	cs.Enum(&s.coalesce, "SLUICE_COALESCE", "on", []string{"on", "off"}, "on: concurrent requests of a tenant without an Idempotency-Key go out as one message, while its earlier publishes wait for their acknowledgement; off: one message per request")
	cs.Duration(&s.shutdownTimeout, "SLUICE_SHUTDOWN_TIMEOUT", 20*time.Second, 0, "longest graceful stop on SIGTERM")
	cs.Duration(&s.shutdownDelay, "SLUICE_SHUTDOWN_DELAY", 0, 0, "on SIGTERM, time between /readyz turning 503 and the listener closing, for load balancers to notice")
	cs.Bool(&s.pprof, "SLUICE_PPROF", false, "serve /debug/pprof/ on the admin port")
	s.rate.Declare(cs)
	if err := cs.Parse(args, stdout); err != nil {
		return s, err
	}
	if err := s.check(); err != nil {
		return s, err
	}
	return s, nil
}

// check refuses combinations of settings that cannot work.
func (s settings) check() error {
	if s.authMode == "keys" && s.keysFile == "" {
		return errors.New("SLUICE_API_KEYS_FILE is required when SLUICE_AUTH=keys (use SLUICE_AUTH=none only for development)")
	}
	if (s.tlsCert == "") != (s.tlsKey == "") {
		return errors.New("SLUICE_TLS_CERT and SLUICE_TLS_KEY must be set together")
	}
	if s.shutdownDelay >= s.shutdownTimeout && s.shutdownDelay > 0 {
		return fmt.Errorf("SLUICE_SHUTDOWN_DELAY=%s: must be shorter than SLUICE_SHUTDOWN_TIMEOUT (%s)", s.shutdownDelay, s.shutdownTimeout)
	}
	// A request in flight at SIGTERM must get its PubAck or its 503 before
	// the shutdown timeout cuts the connection (see shutdown).
	if left := s.shutdownTimeout - s.shutdownDelay; s.shutdownTimeout > 0 && s.publishTimeout >= left {
		return fmt.Errorf("SLUICE_PUBLISH_TIMEOUT=%s: must be shorter than SLUICE_SHUTDOWN_TIMEOUT minus SLUICE_SHUTDOWN_DELAY (%s), so that requests in flight at SIGTERM get their answer", s.publishTimeout, left)
	}
	if err := s.rate.Check(); err != nil {
		return err
	}
	return s.checkMemory(containerMemoryLimit())
}
