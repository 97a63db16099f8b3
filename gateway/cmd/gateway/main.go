// Command gateway is Sluice's HTTP ingest process: it authenticates, admits
// and validates requests, publishes each one to JetStream and answers 202
// once JetStream acknowledged it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	rungroup "github.com/oklog/run"

	"github.com/sluice-ingest/sluice/gateway/internal/auth"
	"github.com/sluice-ingest/sluice/gateway/internal/decode"
	"github.com/sluice-ingest/sluice/gateway/internal/ingest"
	"github.com/sluice-ingest/sluice/pkg/config"
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
	natsURL, natsCreds, streamName string
	replicas                       int
	streamMaxBytes                 int64
	logLevel, logFormat            string
	adminAddr, httpAddr            string
	authMode, keysFile             string
	limits                         decode.Limits
	publishTimeout                 time.Duration
	shutdownTimeout                time.Duration
	pprof                          bool
}

func parseSettings(args []string, getenv func(string) string, stdout io.Writer) (settings, error) {
	var s settings
	cs := config.New("gateway", getenv)
	cs.String(&s.natsURL, "SLUICE_NATS_URL", "nats://127.0.0.1:4222", "NATS server URL; a comma-separated list for a cluster")
	cs.String(&s.natsCreds, "SLUICE_NATS_CREDS", "", "NATS credentials (.creds) file")
	cs.String(&s.streamName, "SLUICE_STREAM", stream.EventsStream, "JetStream stream holding accepted requests")
	cs.Int(&s.replicas, "SLUICE_STREAM_REPLICAS", 1, 1, "stream replicas: 1 for one server, 3 for a cluster")
	cs.Bytes(&s.streamMaxBytes, "SLUICE_STREAM_MAX_BYTES", "0", 0, "stream size bound (0 = unlimited); when full, requests get 503 stream_full")
	cs.Enum(&s.logLevel, "SLUICE_LOG_LEVEL", "info", telemetry.LogLevels, "log level")
	cs.Enum(&s.logFormat, "SLUICE_LOG_FORMAT", "json", telemetry.LogFormats, "log format")
	cs.String(&s.adminAddr, "SLUICE_ADMIN_ADDR", ":9090", "admin listen address: /healthz, /readyz, /metrics")
	cs.String(&s.httpAddr, "SLUICE_HTTP_ADDR", ":8080", "ingest API listen address")
	cs.Enum(&s.authMode, "SLUICE_AUTH", "keys", []string{"keys", "none"}, "keys: API keys from SLUICE_API_KEYS_FILE; none: every request is tenant default (development only)")
	cs.String(&s.keysFile, "SLUICE_API_KEYS_FILE", "", "API keys file: one `key tenant [policy]` per line")
	cs.Bytes(&s.limits.MaxBodyBytes, "SLUICE_MAX_BODY_BYTES", "1MiB", 1, "largest request body on the wire")
	cs.Bytes(&s.limits.MaxDecodedBytes, "SLUICE_MAX_DECODED_BYTES", "4MiB", 1, "largest request body after decompression")
	cs.Int(&s.limits.MaxEvents, "SLUICE_MAX_EVENTS", 10000, 1, "most events in one request")
	cs.Duration(&s.publishTimeout, "SLUICE_PUBLISH_TIMEOUT", 2*time.Second, time.Millisecond, "longest wait for JetStream to acknowledge a publish")
	cs.Duration(&s.shutdownTimeout, "SLUICE_SHUTDOWN_TIMEOUT", 20*time.Second, 0, "longest wait for in-flight requests on SIGTERM")
	cs.Bool(&s.pprof, "SLUICE_PPROF", false, "serve /debug/pprof/ on the admin port")
	if err := cs.Parse(args, stdout); err != nil {
		return s, err
	}
	if s.authMode == "keys" && s.keysFile == "" {
		return s, errors.New("SLUICE_API_KEYS_FILE is required when SLUICE_AUTH=keys (use SLUICE_AUTH=none only for development)")
	}
	return s, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s, err := parseSettings(args, getenv, stdout)
	if err != nil {
		return err
	}
	log, err := telemetry.NewLogger(stderr, s.logFormat, s.logLevel)
	if err != nil {
		return err
	}
	log = log.With("component", "gateway")

	authn := auth.NoAuth()
	if s.authMode == "keys" {
		keys, err := auth.LoadKeysFile(s.keysFile, nil)
		if err != nil {
			return fmt.Errorf("SLUICE_API_KEYS_FILE: %w", err)
		}
		authn = auth.NewAuthenticator(keys)
		log.Info("api keys loaded", "keys", keys.Len())
	} else {
		log.Warn("authentication is off (SLUICE_AUTH=none): every request is tenant default")
	}

	nc, err := stream.Connect(s.natsURL, s.natsCreds, "sluice-gateway", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	streamCfg := stream.Config{Name: s.streamName, Replicas: s.replicas, MaxBytes: s.streamMaxBytes}

	reg := telemetry.NewRegistry()
	var (
		streamReady atomic.Bool
		stopping    atomic.Bool
	)
	ready := func(ctx context.Context) error {
		switch {
		case stopping.Load():
			return errors.New("shutting down")
		case !nc.IsConnected():
			return fmt.Errorf("nats not connected (%s)", nc.Status())
		case !streamReady.Load():
			return errors.New("stream not ensured yet")
		}
		if _, err := js.Stream(ctx, streamCfg.EventsConfig().Name); err != nil {
			return fmt.Errorf("stream %s: %w", streamCfg.EventsConfig().Name, err)
		}
		return nil
	}
	admin, err := telemetry.NewAdmin(s.adminAddr, reg, ready, s.pprof)
	if err != nil {
		return err
	}

	handler := ingest.NewHandler(ingest.Config{
		Auth:           authn,
		Publisher:      js,
		Limits:         s.limits,
		PublishTimeout: s.publishTimeout,
		Metrics:        ingest.NewMetrics(reg),
		Log:            log,
	})
	ln, err := net.Listen("tcp", s.httpAddr)
	if err != nil {
		return fmt.Errorf("listen on SLUICE_HTTP_ADDR %s: %w", s.httpAddr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	var g rungroup.Group
	g.Add(rungroup.SignalHandler(ctx, os.Interrupt, syscall.SIGTERM))
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			return ensureStreams(ctx, js, streamCfg, &streamReady, log)
		}, func(error) { cancel() })
	}
	g.Add(admin.Serve, func(error) {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = admin.Shutdown(sctx)
	})
	g.Add(func() error {
		log.Info("gateway listening", "http", ln.Addr().String(), "admin", admin.Addr(), "nats", s.natsURL)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	}, func(error) {
		// Shutdown order: not ready -> stop accepting -> let in-flight
		// requests get their PubAck and answer -> close NATS (deferred).
		stopping.Store(true)
		sctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("in-flight requests cut at shutdown timeout", "err", err)
		}
	})
	err = g.Run()
	if errors.Is(err, rungroup.ErrSignal) {
		log.Info("stopped", "reason", err)
		return nil
	}
	return err
}

// ensureStreams creates the streams, retrying while NATS is unreachable,
// then stays up until interrupted so the run group keeps going.
func ensureStreams(ctx context.Context, js jetstream.JetStream, cfg stream.Config, ready *atomic.Bool, log *slog.Logger) error {
	backoff := 100 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := stream.EnsureStreams(cctx, js, cfg)
		cancel()
		if err == nil {
			ready.Store(true)
			log.Info("streams ready", "stream", cfg.EventsConfig().Name, "dlq", stream.DLQStream)
			<-ctx.Done()
			return nil
		}
		log.Warn("ensure streams; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
