package limiter

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sluice-ingest/sluice/limiter/redistest"
)

func startRedis(t testing.TB) (*redistest.Server, *redis.Client) {
	t.Helper()
	s := redistest.Start(t)
	return s, s.Client(t)
}

func newTestLimiter(t testing.TB, rdb redis.UniversalClient, opts ...Option) *Limiter {
	t.Helper()
	// Tests run under -race on two cores: a roomier deadline than production.
	opts = append([]Option{WithDeadline(200 * time.Millisecond)}, opts...)
	return mustNew(t, rdb, opts...)
}

// mustNew is New, failing the test on an error; the Limiter is closed at
// cleanup.
func mustNew(t testing.TB, rdb redis.UniversalClient, opts ...Option) *Limiter {
	t.Helper()
	l, err := New(rdb, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// eventually polls cond until it holds or the limit passes.
func eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("not true after %s: %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition
	}
}

type recorder struct {
	mu        sync.Mutex
	decisions map[[2]string]int
	errors    int
	breaker   []BreakerState
	fallback  []bool
}

func newRecorder() *recorder { return &recorder{decisions: map[[2]string]int{}} }

func (r *recorder) ObserveDecision(d Decision) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.decisions[[2]string{string(d.Outcome), string(d.Source)}]++
}

func (r *recorder) ObserveBackendError(string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors++
}

func (r *recorder) ObserveBreaker(s BreakerState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.breaker = append(r.breaker, s)
}

func (r *recorder) ObserveFallback(active bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fallback = append(r.fallback, active)
}

func (r *recorder) count(o Outcome, s Source) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.decisions[[2]string{string(o), string(s)}]
}

func (r *recorder) errorCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errors
}

func (r *recorder) sawBreaker(s BreakerState) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.breaker {
		if b == s {
			return true
		}
	}
	return false
}

func mustAllow(t testing.TB, l *Limiter, ctx context.Context, key string, lim Limit, cost int) Result {
	t.Helper()
	res, err := l.Allow(ctx, key, lim, cost)
	if err != nil {
		t.Fatalf("Allow(%q, %v, %d): %v", key, lim, cost, err)
	}
	return res
}

func (r *recorder) fallbackActive() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.fallback) > 0 && r.fallback[len(r.fallback)-1]
}

// keyTag is the hash tag of key: 16 hex digits of its FNV-64a hash.
func keyTag(key string) string {
	var b strings.Builder
	writeHex(&b, fnv64a(key))
	return b.String()
}
