package devstack

import (
	"cmp"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sluice-ingest/sluice/limiter/proctest"
)

// NATSOptions configures an embedded NATS server.
type NATSOptions struct {
	// Port to listen on at 127.0.0.1; 0 picks a free one.
	Port int
	// StoreDir holds the JetStream files; it survives Shutdown, so a server
	// started again on the same directory finds its streams.
	StoreDir string
	// Debug turns on the server's own logging to stderr.
	Debug bool
	// MaxPayload is the largest message the server takes; 0 means 8 MiB.
	MaxPayload int32
	// Sync is JetStream's sync_interval: how often written messages are
	// fsynced, as a duration, or "always" (before every acknowledgement).
	// Empty means $SLUICE_DEV_NATS_SYNC, else DefaultNATSSync.
	Sync string
	// ProfPort, when not zero, serves the server's /debug/pprof on
	// 127.0.0.1 at that port.
	ProfPort int
}

// DefaultNATSSync is the dev stack's sync_interval, chosen explicitly: the
// server's own default. A 202 then survives the NATS process crashing (the
// data is in the OS page cache) but not the machine losing power within two
// minutes of it; that is enough for development and tests, which would be
// slowed down by an fsync per message. Set SLUICE_DEV_NATS_SYNC=always to
// measure or test the other choice.
const DefaultNATSSync = "2m"

// parseSync reads a sync_interval: a duration of at least 1ms, or "always".
func parseSync(s string) (interval time.Duration, always bool, err error) {
	if strings.EqualFold(s, "always") {
		return 0, true, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Millisecond {
		return 0, false, fmt.Errorf("NATS sync interval %q: want a duration of at least 1ms, or always", s)
	}
	return d, false, nil
}

// NATS is an embedded NATS server with JetStream.
type NATS struct {
	opts NATSOptions
	srv  *server.Server
}

// StartNATS starts an embedded NATS server with JetStream and waits until it
// accepts connections.
func StartNATS(opts NATSOptions) (*NATS, error) {
	if opts.Sync == "" {
		opts.Sync = os.Getenv("SLUICE_DEV_NATS_SYNC")
	}
	if opts.Sync == "" {
		opts.Sync = DefaultNATSSync
	}
	if _, _, err := parseSync(opts.Sync); err != nil {
		return nil, err
	}
	var err error
	if opts.Port, err = proctest.PortOrFree(opts.Port); err != nil {
		return nil, err
	}
	n := &NATS{opts: opts}
	if err := n.start(); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *NATS) start() error {
	interval, always, _ := parseSync(n.opts.Sync) // checked by StartNATS
	so := &server.Options{
		ServerName:   "sluice-dev",
		Host:         "127.0.0.1",
		Port:         n.opts.Port,
		JetStream:    true,
		StoreDir:     n.opts.StoreDir,
		NoSigs:       true,
		NoLog:        !n.opts.Debug,
		MaxPayload:   cmp.Or(n.opts.MaxPayload, 8<<20),
		SyncInterval: interval,
		SyncAlways:   always,
		ProfPort:     n.opts.ProfPort,
	}
	srv, err := server.NewServer(so)
	if err != nil {
		return fmt.Errorf("nats server: %w", err)
	}
	if n.opts.Debug {
		srv.ConfigureLogger()
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return fmt.Errorf("nats server on port %d not ready after 10s", n.opts.Port)
	}
	n.srv = srv
	return nil
}

// Sync is the sync_interval the running server applies: "always" or a
// duration.
func (n *NATS) Sync() string {
	c := n.srv.JetStreamConfig()
	if c.SyncAlways {
		return "always"
	}
	return c.SyncInterval.String()
}

// URL is the client URL, nats://127.0.0.1:<port>.
func (n *NATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port) }

// Shutdown stops the server and waits until it is down. The store stays.
func (n *NATS) Shutdown() {
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}

// Restart starts the server again on the same port and store directory.
func (n *NATS) Restart() error {
	n.Shutdown()
	return n.start()
}
