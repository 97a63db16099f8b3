package ratelimit

import (
	"io"
	"log/slog"
	"maps"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-ingest/sluice/limiter"
	"github.com/sluice-ingest/sluice/pkg/config"
)

// parseSettings reads Settings from env the way the gateway does. Unless env
// says otherwise the deadline is 1s: on a shared test machine a decision
// must come from Redis, not from the fallback, for the counts to be exact.
func parseSettings(t testing.TB, env map[string]string) Settings {
	t.Helper()
	env = maps.Clone(env)
	if _, ok := env["SLUICE_LIMITER_DEADLINE"]; !ok {
		env["SLUICE_LIMITER_DEADLINE"] = "1s"
	}
	var s Settings
	cs := config.New("test", func(k string) string { return env[k] })
	s.Declare(cs)
	if err := cs.Parse(nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	return s
}

// newRateLimiter builds an Limiter from env, closed at cleanup, with its
// metrics on a registry of its own.
func newRateLimiter(t testing.TB, env map[string]string, opts ...limiter.Option) (*Limiter, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	a, err := New(parseSettings(t, env), reg, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a, reg
}

// silentRedis accepts connections and never answers: a Redis that is up
// but stuck, so only the deadline can end a decision.
func silentRedis(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "redis://" + ln.Addr().String()
}

// counter is the value of a counter (or gauge) with the given labels.
func counter(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func itoa(i int) string { return strconv.Itoa(i) }
