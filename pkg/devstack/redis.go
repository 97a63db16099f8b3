package devstack

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// RedisOptions configures a Redis server.
type RedisOptions struct {
	// Port to listen on at 127.0.0.1; 0 picks a free one.
	Port int
	// Dir is redis-server's working directory.
	Dir string
	// AllowEmbedded starts an embedded Redis-protocol server (miniredis)
	// when redis-server is not installed. Tests leave it off: they need the
	// real server's Lua and timing.
	AllowEmbedded bool
	// Log receives redis-server's output; nil discards it.
	Log io.Writer
}

// Redis is a running redis-server, or an embedded stand-in.
type Redis struct {
	opts RedisOptions
	// Kind is "redis-server" or "embedded (miniredis)".
	Kind string
	cmd  *exec.Cmd
	done chan struct{}
	mini *miniredis.Miniredis
}

// StartRedis starts redis-server on 127.0.0.1 (or the embedded server when
// allowed and redis-server is missing) and waits until it accepts connections.
func StartRedis(ctx context.Context, opts RedisOptions) (*Redis, error) {
	if opts.Port == 0 {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		opts.Port = p
	}
	r := &Redis{opts: opts}
	bin, err := FindBinary("redis-server", "SLUICE_REDIS_SERVER")
	if err != nil {
		if !opts.AllowEmbedded {
			return nil, err
		}
		r.Kind = "embedded (miniredis)"
		r.mini = miniredis.NewMiniRedis()
		if err := r.mini.StartAddr(r.Addr()); err != nil {
			return nil, fmt.Errorf("start embedded redis: %w", err)
		}
		return r, nil
	}
	r.Kind = "redis-server"
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("redis dir: %w", err)
	}
	r.cmd = exec.Command(bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(opts.Port),
		"--save", "", "--appendonly", "no", "--dir", opts.Dir)
	r.cmd.Stdout, r.cmd.Stderr = opts.Log, opts.Log
	DieWithParent(r.cmd)
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	r.done = make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := WaitTCP(wctx, r.Addr()); err != nil {
		r.Stop()
		return nil, fmt.Errorf("redis-server did not start: %w", err)
	}
	return r, nil
}

// Addr is host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.opts.Port) }

// Pid is the process id of redis-server, 0 for the embedded server.
func (r *Redis) Pid() int {
	if r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// URL is the redis:// URL.
func (r *Redis) URL() string { return "redis://" + r.Addr() }

// Stop stops the server.
func (r *Redis) Stop() {
	if r.mini != nil {
		r.mini.Close()
		r.mini = nil
	}
	if r.cmd != nil {
		stopProcess(r.cmd, r.done, 5*time.Second)
		r.cmd = nil
	}
}
