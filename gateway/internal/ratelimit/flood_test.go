package ratelimit

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-ingest/sluice/limiter/redistest"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
)

// The flooded tenant's policy: 200/s with a burst of 200.
const floodRate, floodBurst = 200, 200

// floodKeys writes the keys file of the flood tests.
func floodKeys(t *testing.T) string {
	t.Helper()
	keys := filepath.Join(t.TempDir(), "keys")
	writeFile(t, keys, "key-f acme 200/s,burst=200\nkey-w warmup\n")
	return keys
}

// startGateways runs n gateway binaries sharing one NATS and the Redis at
// redisURL, with the keys file keys (which must hold key-w, tenant warmup,
// without a policy) and env on top of the defaults, and waits until each is
// ready and has warmed up (connections to NATS and Redis, the scripts
// loaded) on the warmup tenant, so that a measured run starts at speed.
func startGateways(t *testing.T, n int, redisURL, keys string, env map[string]string) []*gatewayProc {
	t.Helper()
	bin := devtest.Binary(t, gatewayPkg)
	nats := devtest.NATS(t)
	gws := make([]*gatewayProc, n)
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range gws {
		addr, admin := devtest.Addr(t), devtest.Addr(t)
		e := map[string]string{
			"SLUICE_NATS_URL":      nats.URL(),
			"SLUICE_HTTP_ADDR":     addr,
			"SLUICE_ADMIN_ADDR":    admin,
			"SLUICE_API_KEYS_FILE": keys,
			"SLUICE_REDIS_URL":     redisURL,
			"SLUICE_RATE_LIMIT":    "100000/s", // the default: warmup's; a key's own policy wins
			"SLUICE_MAX_INFLIGHT":  "100000",   // the limiter is under test, not the capacity check
		}
		for k, v := range env {
			e[k] = v
		}
		p := devtest.Start(t, fmt.Sprintf("gateway-%d", i), bin, e)
		devtest.WaitReady(t, p, "http://"+admin+"/readyz")
		gws[i] = &gatewayProc{proc: p, url: "http://" + addr + "/v1/events", admin: "http://" + admin}
		for range 5 {
			if st := postStatus(t.Context(), client, gws[i].url, "key-w"); st != http.StatusAccepted {
				t.Fatalf("warm-up request to gateway %d: %d", i, st)
			}
		}
	}
	return gws
}

// floodResult counts the answers of one flood.
type floodResult struct {
	statuses map[int]int
	perGW    []int
	perPhase map[int32]int // 202s by the phase (see flood) they were answered in
	elapsed  time.Duration // from before the first request to after the last answer
}

func (r floodResult) admitted() int { return r.statuses[http.StatusAccepted] }

// flood sends requests with key as fast as clients goroutines can, each
// client alternating between the gateways, until stop is closed. Admissions
// are counted by the value of phase (if not nil) when they are answered.
func flood(t *testing.T, gws []*gatewayProc, key string, clients int, stop <-chan struct{}, phase *atomic.Int32) floodResult {
	t.Helper()
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients},
		Timeout:   10 * time.Second,
	}
	defer client.CloseIdleConnections()
	var (
		mu  sync.Mutex
		res = floodResult{statuses: map[int]int{}, perGW: make([]int, len(gws)), perPhase: map[int32]int{}}
		wg  sync.WaitGroup
		seq atomic.Int64
	)
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				gi := int(seq.Add(1)) % len(gws)
				st := postStatus(t.Context(), client, gws[gi].url, key)
				mu.Lock()
				res.statuses[st]++
				if st == http.StatusAccepted {
					res.perGW[gi]++
					if phase != nil {
						res.perPhase[phase.Load()]++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// floodFor floods for d.
func floodFor(t *testing.T, gws []*gatewayProc, key string, clients int, d time.Duration) floodResult {
	t.Helper()
	stop := make(chan struct{})
	timer := time.AfterFunc(d, func() { close(stop) })
	defer timer.Stop()
	return flood(t, gws, key, clients, stop, nil)
}

// decisions sums a gateway's sluice_gateway_limiter_decisions_total by source.
func decisions(t *testing.T, gw *gatewayProc) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for name, v := range scrape(t, gw.admin+"/metrics") {
		if !strings.HasPrefix(name, "sluice_gateway_limiter_decisions_total{") {
			continue
		}
		_, src, _ := strings.Cut(name, `source="`)
		src, _, _ = strings.Cut(src, `"`)
		out[src] += v
	}
	return out
}

// A tenant flooding two gateways with 48 and with 256 concurrent clients,
// on a machine the flood saturates, with Redis healthy, gets what its
// policy allows: at most 1.02 × (rate × elapsed + burst) and at least
// 0.98 × rate × (elapsed − 1s). The decisions are Redis's (or the deny
// cache's, which only repeats Redis's denials): a fallback is made only
// when Redis answered nothing within the wait bound, which a healthy Redis
// misses only when the machine starves the gateway's own goroutines for
// that long (then at most a few percent; before deadlines counted from the
// send, nearly every decision of this flood was a fallback).
func TestFloodTwoGateways(t *testing.T) {
	rds := redistest.Start(t)
	gws := startGateways(t, 2, rds.URL(), floodKeys(t), nil)
	for _, clients := range []int{48, 256} {
		t.Run(fmt.Sprint(clients, "clients"), func(t *testing.T) {
			key := "key-f"
			// A fresh tenant state for each run: the same tenant, a clean key.
			flushTenant(t, rds)
			before := []map[string]float64{decisions(t, gws[0]), decisions(t, gws[1])}
			r := floodFor(t, gws, key, clients, 4*time.Second)
			secs := r.elapsed.Seconds()
			bound := floodRate*secs + floodBurst
			low := 0.98 * floodRate * (secs - 1)
			t.Logf("%d clients, %s: %d admitted (%d + %d) of %d requests, bound %.0f (ratio %.3f), floor %.0f; answers %v",
				clients, r.elapsed.Round(time.Millisecond), r.admitted(), r.perGW[0], r.perGW[1], total(r.statuses), bound,
				float64(r.admitted())/bound, low, r.statuses)
			if float64(r.admitted()) > 1.02*bound {
				t.Errorf("over-admission: %d admitted, more than 1.02 × %.0f", r.admitted(), bound)
			}
			if float64(r.admitted()) < low {
				t.Errorf("under-admission: %d admitted, less than %.0f", r.admitted(), low)
			}
			for st := range r.statuses {
				if st != http.StatusAccepted && st != http.StatusTooManyRequests {
					t.Errorf("answers other than 202 and 429: %v", r.statuses)
				}
			}
			for i, g := range gws {
				after := decisions(t, g)
				t.Logf("gateway %d decisions by source: %v", i, sub(after, before[i]))
				d := sub(after, before[i])
				var all float64
				for _, v := range d {
					all += v
				}
				if n := d["fallback"]; n > 0.05*all {
					t.Errorf("gateway %d: %v of %v decisions made without Redis", i, n, all)
				}
			}
		})
	}
}

// flushTenant deletes the flooded tenant's limiter state.
func flushTenant(t *testing.T, rds *redistest.Server) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: rds.Addr()})
	defer c.Close()
	keys, err := c.Keys(t.Context(), Prefix+"*:acme").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		if err := c.Del(t.Context(), keys...).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// A tenant flooding two gateways while Redis is frozen for 3 s: in every
// mode the tenant gets at most 1.10 × (rate × elapsed + burst); closed
// refuses with 503 during the stall; and a second after Redis answers
// again, every decision is Redis's once more.
func TestFloodRedisStalled(t *testing.T) {
	const clients = 48
	for _, mode := range []string{"local", "open", "closed"} {
		t.Run(mode, func(t *testing.T) {
			rds := redistest.Start(t)
			gws := startGateways(t, 2, rds.URL(), floodKeys(t), map[string]string{"SLUICE_LIMITER_ON_ERROR": mode})
			stop := make(chan struct{})
			var after []map[string]float64
			var phase atomic.Int32 // 0 healthy, 1 stalled, 2 back
			go func() {
				defer close(stop)
				time.Sleep(1500 * time.Millisecond) // the flood runs with Redis healthy
				rds.Pause()                         // frozen, like a Redis stuck on a slow disk or a long fork
				phase.Store(1)
				time.Sleep(3 * time.Second) // the stall
				rds.Resume()
				phase.Store(2)
				time.Sleep(time.Second) // Redis decides again within a second
				after = []map[string]float64{decisions(t, gws[0]), decisions(t, gws[1])}
				time.Sleep(1500 * time.Millisecond)
			}()
			r := flood(t, gws, "key-f", clients, stop, &phase)
			secs := r.elapsed.Seconds()
			bound := floodRate*secs + floodBurst
			t.Logf("%s, %d clients, %s with a 3s stall: %d admitted (%d + %d) of %d, bound %.0f (ratio %.3f); answers %v",
				mode, clients, r.elapsed.Round(time.Millisecond), r.admitted(), r.perGW[0], r.perGW[1], total(r.statuses), bound,
				float64(r.admitted())/bound, r.statuses)
			t.Logf("admitted before the stall %d, during %d, after %d", r.perPhase[0], r.perPhase[1], r.perPhase[2])
			if float64(r.admitted()) > 1.10*bound {
				t.Errorf("over-admission: %d admitted, more than 1.10 × %.0f", r.admitted(), bound)
			}
			if r.admitted() < floodRate {
				t.Errorf("only %d admitted: the tenant was shut out", r.admitted())
			}
			if mode == "closed" && r.statuses[http.StatusServiceUnavailable] == 0 {
				t.Errorf("closed: no 503 during the stall: %v", r.statuses)
			}
			if mode != "closed" && r.statuses[http.StatusServiceUnavailable] > 0 {
				t.Errorf("%s: 503s: %v", mode, r.statuses)
			}
			for i, g := range gws {
				end := decisions(t, g)
				t.Logf("gateway %d decisions by source: %v, of which after Redis's first second back: %v", i, end, sub(end, after[i]))
				if n := end["fallback"] - after[i]["fallback"]; n > 0 {
					t.Errorf("gateway %d: %v decisions without Redis more than a second after it answered again", i, n)
				}
				if end["fallback"] == 0 && mode != "closed" {
					t.Errorf("gateway %d: no decision without Redis during the stall", i)
				}
			}
		})
	}
}

func total(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sub(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range a {
		if d := v - b[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}
