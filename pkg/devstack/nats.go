package devstack

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
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
	// SyncAlways makes JetStream fsync every write (nats-server's
	// `sync_interval: always`) instead of every two minutes.
	SyncAlways bool
	// ProfPort, when not zero, serves the server's /debug/pprof on
	// 127.0.0.1 at that port.
	ProfPort int
}

// NATS is an embedded NATS server with JetStream.
type NATS struct {
	opts NATSOptions
	srv  *server.Server
}

// StartNATS starts an embedded NATS server with JetStream and waits until it
// accepts connections.
func StartNATS(opts NATSOptions) (*NATS, error) {
	if opts.Port == 0 {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		opts.Port = p
	}
	n := &NATS{opts: opts}
	if err := n.start(); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *NATS) start() error {
	so := &server.Options{
		ServerName: "sluice-dev",
		Host:       "127.0.0.1",
		Port:       n.opts.Port,
		JetStream:  true,
		StoreDir:   n.opts.StoreDir,
		NoSigs:     true,
		NoLog:      !n.opts.Debug,
		MaxPayload: 8 << 20,
		ProfPort:   n.opts.ProfPort,
	}
	if n.opts.SyncAlways {
		so.SyncAlways = true
		so.SyncInterval = 2 * time.Minute // the server's default, kept as the background flush
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
