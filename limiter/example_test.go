package limiter_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sluice-ingest/sluice/limiter"
)

// A tenant policy from a keys file, checked per request; the answer becomes
// a 429 with Retry-After and the IETF RateLimit headers.
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	l, err := limiter.New(rdb,
		limiter.WithMode(limiter.ModeLocal),
		limiter.WithDeadline(5*time.Millisecond),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()

	policy, err := limiter.ParsePolicy("1000/s,burst=2000")
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := l.Allow(context.Background(), "tenant:acme", policy, 1)
	switch {
	case errors.Is(err, limiter.ErrUnavailable):
		fmt.Println("503") // ModeClosed only
	case err != nil:
		fmt.Println("500:", err)
	case !res.Allowed:
		h := limiter.Headers("tenant", res)
		fmt.Println("429, Retry-After:", h.RetryAfter, "RateLimit:", h.RateLimit)
	default:
		h := limiter.Headers("tenant", res)
		fmt.Println("RateLimit-Policy:", h.Policy)
	}
}

func ExampleParsePolicy() {
	for _, s := range []string{"1000/s,burst=2000", "60000/m", "10/100ms", "1000/d"} {
		l, err := limiter.ParsePolicy(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(l.Algorithm, l.Rate, l.Period, l.Burst, l)
	}
	// Output:
	// gcra 1000 1s 2000 1000/s,burst=2000
	// gcra 60000 1m0s 60000 60000/m
	// gcra 10 100ms 10 10/100ms
	// limiter: invalid policy "1000/d": unit "d" must be s, m, h or a duration of at least 1µs
}

func ExampleLimiter_AllowAll() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	l, err := limiter.New(rdb)
	if err != nil {
		return
	}
	defer l.Close()
	// A request counts against its tenant and against a global limit; if
	// either says no, neither is charged.
	res, err := l.AllowAll(context.Background(), []limiter.Request{
		{Key: "tenant:acme", Limit: limiter.PerSecond(1000), Cost: 1},
		{Key: "global", Limit: limiter.PerSecond(50000), Cost: 1},
	})
	fmt.Println(len(res), err)
}

func ExampleLimiter_Acquire() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	l, err := limiter.New(rdb)
	if err != nil {
		return
	}
	defer l.Close()
	ctx := context.Background()
	// At most 8 uploads in flight per tenant; a crashed holder's lease
	// expires after 30s.
	lease, res, err := l.Acquire(ctx, "uploads:acme", limiter.Concurrent(8, 30*time.Second))
	if err != nil || !res.Allowed {
		return
	}
	defer l.Release(ctx, lease)
}
