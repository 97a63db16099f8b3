package limiter

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestCloseStopsGoroutines(t *testing.T) {
	srv, _ := startRedis(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	l, err := New(rdb, WithMode(ModeLocal), WithInstance("leak", 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	mustAllow(t, l, t.Context(), "k", PerSecond(10), 1)
	lease, _, err := l.Acquire(t.Context(), "k", Concurrent(1, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(t.Context(), lease); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Allow(t.Context(), "k", PerSecond(10), 1); err != ErrClosed {
		t.Fatalf("Allow after Close: %v, want ErrClosed", err)
	}
	if n, _ := rdb.ZCard(t.Context(), "rl:{instances}").Result(); n != 0 {
		t.Fatalf("%d instances left in the heartbeat set after Close", n)
	}
}
