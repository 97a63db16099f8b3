package devstack

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/alicebob/miniredis/v2"

	"github.com/sluice-ingest/sluice/limiter/proctest"
	"github.com/sluice-ingest/sluice/limiter/redistest"
)

// RedisOptions configures a Redis server.
type RedisOptions struct {
	// Port to listen on at 127.0.0.1; 0 picks a free one.
	Port int
	// Dir is redis-server's working directory; its log is redis.log there.
	Dir string
	// AllowEmbedded starts an embedded Redis-protocol server (miniredis)
	// when redis-server is not installed. Tests leave it off: they need the
	// real server's Lua and timing.
	AllowEmbedded bool
}

// Redis is a running redis-server (started by limiter/redistest, the one
// launcher), or an embedded stand-in.
type Redis struct {
	// Kind is "redis-server" or "embedded (miniredis)".
	Kind string
	srv  *redistest.Server
	mini *miniredis.Miniredis
	addr string
}

// StartRedis starts redis-server on 127.0.0.1 (or the embedded server when
// allowed and redis-server is missing) and waits until it answers.
func StartRedis(ctx context.Context, opts RedisOptions) (*Redis, error) {
	srv, err := redistest.Launch(ctx, redistest.Options{Port: opts.Port, Dir: opts.Dir})
	if err == nil {
		return &Redis{Kind: redistest.Binary, srv: srv, addr: srv.Addr()}, nil
	}
	if !errors.Is(err, proctest.ErrNotFound) || !opts.AllowEmbedded {
		return nil, err
	}
	if opts.Port == 0 {
		if opts.Port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	r := &Redis{Kind: "embedded (miniredis)", mini: miniredis.NewMiniRedis(), addr: "127.0.0.1:" + strconv.Itoa(opts.Port)}
	if err := r.mini.StartAddr(r.addr); err != nil {
		return nil, fmt.Errorf("start embedded redis: %w", err)
	}
	return r, nil
}

// Addr is host:port.
func (r *Redis) Addr() string { return r.addr }

// Pid is the process id of redis-server, 0 for the embedded server.
func (r *Redis) Pid() int {
	if r.srv == nil {
		return 0
	}
	return r.srv.Pid()
}

// URL is the redis:// URL.
func (r *Redis) URL() string { return "redis://" + r.addr }

// Stop stops the server.
func (r *Redis) Stop() {
	if r.mini != nil {
		r.mini.Close()
		r.mini = nil
	}
	if r.srv != nil {
		r.srv.Stop()
		r.srv = nil
	}
}
