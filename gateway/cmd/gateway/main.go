// Command gateway is Sluice's HTTP ingest process: it authenticates, admits
// and validates requests, publishes each one to JetStream and answers 202
// once JetStream acknowledged it.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	rungroup "github.com/oklog/run"

	"github.com/sluice-ingest/sluice/gateway/internal/auth"
	"github.com/sluice-ingest/sluice/gateway/internal/decode"
	"github.com/sluice-ingest/sluice/gateway/internal/ingest"
	"github.com/sluice-ingest/sluice/gateway/internal/ratelimit"
	"github.com/sluice-ingest/sluice/pkg/config"
	"github.com/sluice-ingest/sluice/pkg/ledger"
	"github.com/sluice-ingest/sluice/pkg/receipts"
	"github.com/sluice-ingest/sluice/pkg/stream"
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

type settings struct {
	nats                stream.Settings
	log                 telemetry.LogSettings
	adminAddr, httpAddr string
	authMode, keysFile  string
	tlsCert, tlsKey     string
	limits              decode.Limits
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
	cs.Int(&s.limits.MaxEvents, "SLUICE_MAX_EVENTS", decode.DefaultMaxEvents, 1, "most events in one request")
	cs.Int(&s.limits.MaxDepth, "SLUICE_MAX_DEPTH", decode.DefaultMaxDepth, 1, "deepest nesting of objects and arrays in a body (the {\"events\":[...]} wrapper takes 2)")
	cs.Int(&s.maxInflight, "SLUICE_MAX_INFLIGHT", ingest.DefaultMaxInflight, 1, "requests decoded or published at once; one more is answered 503 overloaded")
	cs.String(&s.consumer, "SLUICE_CONSUMER", stream.Consumer, "the workers' durable consumer, whose lag SLUICE_MAX_CONSUMER_LAG watches")
	cs.Int(&s.maxConsumerLag, "SLUICE_MAX_CONSUMER_LAG", 0, 0, "answer 503 backlogged while the workers' consumer has more messages pending than this (0 = off)")
	cs.Duration(&s.publishTimeout, "SLUICE_PUBLISH_TIMEOUT", ingest.DefaultPublishTimeout, time.Millisecond, "longest wait for JetStream to acknowledge a publish")
	cs.Enum(&s.coalesce, "SLUICE_COALESCE", "on", []string{"on", "off"}, "on: concurrent requests of a tenant without an Idempotency-Key go out as one message, while its earlier publishes wait for their acknowledgement; off: one message per request")
	cs.Duration(&s.shutdownTimeout, "SLUICE_SHUTDOWN_TIMEOUT", 20*time.Second, 0, "longest graceful stop on SIGTERM")
	cs.Duration(&s.shutdownDelay, "SLUICE_SHUTDOWN_DELAY", 0, 0, "on SIGTERM, time between /readyz turning 503 and the listener closing, for load balancers to notice")
	cs.Bool(&s.pprof, "SLUICE_PPROF", false, "serve /debug/pprof/ on the admin port")
	s.rate.Declare(cs)
	if err := cs.Parse(args, stdout); err != nil {
		return s, err
	}
	if s.authMode == "keys" && s.keysFile == "" {
		return s, errors.New("SLUICE_API_KEYS_FILE is required when SLUICE_AUTH=keys (use SLUICE_AUTH=none only for development)")
	}
	if (s.tlsCert == "") != (s.tlsKey == "") {
		return s, errors.New("SLUICE_TLS_CERT and SLUICE_TLS_KEY must be set together")
	}
	if s.shutdownDelay >= s.shutdownTimeout && s.shutdownDelay > 0 {
		return s, fmt.Errorf("SLUICE_SHUTDOWN_DELAY=%s: must be shorter than SLUICE_SHUTDOWN_TIMEOUT (%s)", s.shutdownDelay, s.shutdownTimeout)
	}
	// A request in flight at SIGTERM must get its PubAck or its 503 before
	// the shutdown timeout cuts the connection (see shutdown).
	if left := s.shutdownTimeout - s.shutdownDelay; s.shutdownTimeout > 0 && s.publishTimeout >= left {
		return s, fmt.Errorf("SLUICE_PUBLISH_TIMEOUT=%s: must be shorter than SLUICE_SHUTDOWN_TIMEOUT minus SLUICE_SHUTDOWN_DELAY (%s), so that requests in flight at SIGTERM get their answer", s.publishTimeout, left)
	}
	if err := s.rate.Check(); err != nil {
		return s, err
	}
	if err := s.checkMemory(containerMemoryLimit()); err != nil {
		return s, err
	}
	return s, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s, err := parseSettings(args, getenv, stdout)
	if err != nil {
		return err
	}
	log, err := s.log.Logger(stderr, "gateway")
	if err != nil {
		return err
	}
	if getenv("GOMEMLIMIT") == "" {
		limit := s.memory().softLimit()
		debug.SetMemoryLimit(limit)
		log.Debug("memory limit set", "bytes", limit)
	}
	if getenv("GOGC") == "" {
		// The soft limit bounds the heap, so the collector need not run
		// each time the small live heap doubles: at 1 event/request it
		// took about 7 % of the gateway's CPU with the default of 100.
		debug.SetGCPercent(gcPercent)
	}

	authn := auth.NoAuth()
	if s.authMode == "keys" {
		keys, err := auth.LoadKeysFile(s.keysFile, ratelimit.ValidPolicy)
		if err != nil {
			return fmt.Errorf("SLUICE_API_KEYS_FILE: %w", err)
		}
		authn = auth.NewAuthenticator(keys)
		log.Info("api keys loaded", "keys", keys.Len())
	} else {
		log.Warn("authentication is off (SLUICE_AUTH=none): every request is tenant default")
	}
	var certs *certificate
	if s.tlsCert != "" {
		if certs, err = loadCertificate(s.tlsCert, s.tlsKey); err != nil {
			return err
		}
	}

	nc, err := stream.Connect(s.nats.URL, s.nats.Creds, "sluice-gateway", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	// Pending acks are bounded like the handler's in-flight requests, and a
	// future nobody waits for any more is dropped after the publish timeout.
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(s.maxInflight),
		jetstream.WithPublishAsyncTimeout(s.publishTimeout))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	streamCfg := s.nats.Config()

	reg := telemetry.NewRegistry()
	limits, err := ratelimit.New(s.rate, reg, log)
	if err != nil {
		return err
	}
	defer limits.Close()
	ready := &readiness{nc: nc, js: js, stream: streamCfg.EventsConfig().Name}
	admin, err := telemetry.NewAdmin(s.adminAddr, reg, ready.check, s.pprof)
	if err != nil {
		return err
	}
	var lag *ingest.LagWatcher
	if s.maxConsumerLag > 0 {
		lag = ingest.NewLagWatcher(js, streamCfg.EventsConfig().Name, s.consumer, int64(s.maxConsumerLag), time.Second, log)
	}
	tally := ledger.NewTally(js, log)
	handler := ingest.NewHandler(ingest.Config{
		Auth:           authn,
		Publisher:      js,
		Limits:         s.limits,
		PublishTimeout: s.publishTimeout,
		MaxInflight:    s.maxInflight,
		Connected:      nc.IsConnected,
		Lag:            lag,
		Metrics:        ingest.NewMetrics(reg),
		Log:            log,
		// A request that costs 1 is limited before its body is decoded.
		Admit:           limits,
		AdmitBeforeBody: !limits.WeighsEvents(),
		Receipts:        receipts.NewReader(js),
		Tally:           tally,
		Coalesce:        s.coalesce == "on",
	})
	capDecoded := capToBroker(nc, handler, s.limits.MaxDecodedBytes, log)
	ln, err := net.Listen("tcp", s.httpAddr)
	if err != nil {
		return fmt.Errorf("listen on SLUICE_HTTP_ADDR %s: %w", s.httpAddr, err)
	}
	srv := newHTTPServer(handler, defaultTimeouts(s.publishTimeout), log)
	if certs != nil {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get}
	}

	var g rungroup.Group
	g.Add(rungroup.SignalHandler(ctx, os.Interrupt, syscall.SIGTERM))
	// The HTTP server comes first: the group interrupts actors in the order
	// they were added, and its interrupt is the whole graceful stop, so the
	// admin server (/readyz) and NATS stay up until it is done.
	g.Add(func() error {
		log.Info("gateway listening", "http", ln.Addr().String(), "tls", certs != nil, "admin", admin.Addr(), "nats", s.nats.URL)
		var err error
		if certs != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	}, func(error) {
		shutdown(srv, ready, s.shutdownDelay, s.shutdownTimeout, log)
	})
	{
		// After the HTTP server, so its interrupt (the last flush) comes
		// once every request in flight has been answered and counted.
		ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		g.Add(func() error { return tally.Run(ctx, tallyInterval) }, func(error) { cancel() })
	}
	g.Add(admin.Serve, func(error) {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = admin.Shutdown(sctx)
	})
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			if err := stream.Retry(ctx, log, "ensure streams", func(ctx context.Context) error {
				if err := stream.EnsureStreams(ctx, js, streamCfg); err != nil {
					return err
				}
				return ensureProof(ctx, js, s.nats)
			}); err != nil {
				return nil // interrupted
			}
			capDecoded() // connected now
			ready.ensured.Store(true)
			log.Info("streams ready", "stream", streamCfg.EventsConfig().Name, "dlq", stream.DLQStream)
			<-ctx.Done()
			return nil
		}, func(error) { cancel() })
	}
	{
		// Registered before anything is served: an unhandled SIGHUP would
		// end the process.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		ctx, cancel := context.WithCancel(ctx)
		reload := func() { reloadOnHangup(s, authn, certs, log) }
		g.Add(func() error { return onSignal(ctx, hup, reload) }, func(error) { cancel() })
	}
	if lag != nil {
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return lag.Run(ctx) }, func(error) { cancel() })
	}
	err = g.Run()
	var sig *rungroup.SignalError
	if errors.As(err, &sig) {
		log.Info("stopped", "signal", sig.Signal.String())
		return nil
	}
	return err
}

// capToBroker keeps the decoded limit within the broker's max_payload, so
// that a body the broker would refuse is refused as soon as its decoded
// bytes pass the message size, not after all of SLUICE_MAX_DECODED_BYTES
// was decoded and held. It applies it on every reconnection and returns
// the function to apply it now (once connected).
func capToBroker(nc *nats.Conn, h *ingest.Handler, configured int64, log *slog.Logger) func() {
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

// shutdown is the graceful stop, in this order: /readyz answers 503 so load
// balancers stop sending and keep-alives end; after delay the listener closes and idle
// connections are closed; requests in flight finish (each gets its 202 or
// 503: parseSettings keeps the publish timeout shorter than what is left of
// the shutdown timeout after delay); at the timeout whatever is left is
// cut. NATS is closed after this returns.
func shutdown(srv *http.Server, ready *readiness, delay, timeout time.Duration, log *slog.Logger) {
	ready.stopping.Store(true)
	// From now on every answer closes its connection, so clients stop
	// reusing keep-alive connections while the listener is still open: a
	// request sent on an idle connection just as Shutdown closes it is the
	// one a client cannot tell from a dropped request.
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

// readiness is /readyz: ready while NATS is connected, the stream exists,
// and the process is not stopping.
type readiness struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	stream   string
	ensured  atomic.Bool
	stopping atomic.Bool
}

func (r *readiness) check(ctx context.Context) error {
	switch {
	case r.stopping.Load():
		return errors.New("shutting down")
	case !r.nc.IsConnected():
		return fmt.Errorf("nats not connected (%s)", r.nc.Status())
	case !r.ensured.Load():
		return errors.New("stream not ensured yet")
	}
	if _, err := r.js.Stream(ctx, r.stream); err != nil {
		return fmt.Errorf("stream %s: %w", r.stream, err)
	}
	return nil
}

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

// certificate is the TLS certificate, replaced on SIGHUP.
type certificate struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

func loadCertificate(certFile, keyFile string) (*certificate, error) {
	c := &certificate{certFile: certFile, keyFile: keyFile}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certificate) load() error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("SLUICE_TLS_CERT/SLUICE_TLS_KEY: %w", err)
	}
	c.cur.Store(&cert)
	return nil
}

func (c *certificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }

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
