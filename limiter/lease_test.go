package limiter

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestLeasesNeverExceedN(t *testing.T) {
	srv, _ := startRedis(t)
	const n = 5
	lim := Concurrent(n, 10*time.Second)
	// Four limiters with their own clients stand for four processes.
	var limiters []*Limiter
	for range 4 {
		limiters = append(limiters, newTestLimiter(t, redis.NewClient(&redis.Options{Addr: srv.Addr()})))
	}
	var inFlight, peak, granted atomic.Int64
	var wg sync.WaitGroup
	for g := range 64 {
		l := limiters[g%len(limiters)]
		wg.Go(func() {
			for range 40 {
				lease, res, err := l.Acquire(t.Context(), "tenant:acme", lim)
				if err != nil {
					t.Error(err)
					return
				}
				if !res.Allowed {
					if res.RetryAfter <= 0 || res.RetryAfter > 10*time.Second {
						t.Errorf("denied with RetryAfter %s", res.RetryAfter)
					}
					continue
				}
				granted.Add(1)
				cur := inFlight.Add(1)
				for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
				}
				time.Sleep(100 * time.Microsecond) // hold the lease for a while
				inFlight.Add(-1)
				if err := l.Release(t.Context(), lease); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if peak.Load() > n || granted.Load() < n {
		t.Fatalf("peak %d leases in flight (limit %d), %d granted", peak.Load(), n, granted.Load())
	}
	t.Logf("peak %d, granted %d of %d attempts", peak.Load(), granted.Load(), 64*40)
	// All released: n are free again.
	for i := range n {
		if _, res, err := limiters[0].Acquire(t.Context(), "tenant:acme", lim); err != nil || !res.Allowed || res.Remaining != n-1-i {
			t.Fatalf("after release, acquire %d: %+v, %v", i, res, err)
		}
	}
}

func TestLeaseExpiresWhenHolderDies(t *testing.T) {
	srv, rdb := startRedis(t)
	const ttl = 500 * time.Millisecond
	lim := Concurrent(3, ttl)
	spec := hammerSpec{Addrs: []string{srv.Addr()}, Limit: lim, Keys: []string{"holder"}, Lease: true, LeaseHold: time.Minute}
	raw, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	held := ""
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "HELD "); ok {
			held = v
			break
		}
	}
	if held != "3" {
		t.Fatalf("holder process held %q leases, want 3", held)
	}
	l := newTestLimiter(t, rdb)
	_, res, err := l.Acquire(t.Context(), "holder", lim)
	if err != nil || res.Allowed || res.RetryAfter <= 0 || res.RetryAfter > ttl {
		t.Fatalf("acquire while held: %+v, %v", res, err)
	}
	_ = cmd.Process.Kill() // the holder dies without releasing
	killed := time.Now()
	eventually(t, 5*time.Second, "a lease of the dead holder expires", func() bool {
		lease, res, err := l.Acquire(t.Context(), "holder", lim)
		if err != nil {
			t.Fatal(err)
		}
		if res.Allowed {
			_ = l.Release(t.Context(), lease)
		}
		return res.Allowed
	})
	if waited := time.Since(killed); waited > ttl+time.Second {
		t.Fatalf("lease freed %s after the holder died, ttl %s", waited, ttl)
	}
	// The lease set expires with its last lease.
	key, _ := redisKey("rl:", Concurrency, lim, "holder")
	if pttl := rdb.PTTL(t.Context(), key).Val(); pttl > ttl {
		t.Fatalf("lease set PTTL %s > ttl %s", pttl, ttl)
	}
}

func TestAcquireValidates(t *testing.T) {
	_, rdb := startRedis(t)
	l := newTestLimiter(t, rdb)
	if _, _, err := l.Acquire(t.Context(), "k", PerSecond(1)); err == nil {
		t.Fatal("Acquire with a GCRA limit succeeded")
	}
	if err := l.Release(t.Context(), Lease{}); err != nil {
		t.Fatalf("release of an empty lease: %v", err)
	}
}
