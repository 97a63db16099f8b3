package limiter

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sluice-ingest/sluice/limiter/redistest"
)

// redisRateGCRA is a one-key GCRA script in the style of go-redis/redis_rate
// (allowN): the baseline a library making one round trip per decision has.
const redisRateGCRA = `
redis.replicate_commands()
local key = KEYS[1]
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local emission = period / rate
local increment = emission * cost
local offset = emission * burst
local t = redis.call("TIME")
local now = (t[1] - 1483228800) + t[2] / 1000000
local tat = redis.call("GET", key)
if not tat then tat = now else tat = tonumber(tat) end
tat = math.max(tat, now)
local new_tat = tat + increment
local diff = now - (new_tat - offset)
if diff < 0 then
  return {0, 0, tostring(-diff), tostring(tat - now)}
end
local reset = new_tat - now
if reset > 0 then redis.call("SET", key, new_tat, "EX", math.ceil(reset)) end
return {cost, math.floor(diff / emission), tostring(-1), tostring(reset)}
`

// decider is one implementation under benchmark.
type decider func(ctx context.Context, key string) (bool, error)

// benchLimit admits everything: the benchmark measures decisions, not denials.
var benchLimit = Limit{Rate: 1_000_000_000, Period: time.Second, Burst: 1_000_000_000}

func BenchmarkAllow(b *testing.B) {
	srv := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 128})
	b.Cleanup(func() { _ = rdb.Close() })

	var fallbacks atomic.Int64
	obs := fallbackCounter{n: &fallbacks}
	// A long deadline: a decision that fell back would be a free one.
	coalesced := mustNew(b, rdb, WithDeadline(time.Second), WithObserver(obs))

	s := newScripts()
	rr := redis.NewScript(redisRateGCRA)
	lim := benchLimit.normalize()
	impls := []struct {
		name   string
		decide decider
	}{
		{"coalesced", func(ctx context.Context, key string) (bool, error) {
			res, err := coalesced.Allow(ctx, key, benchLimit, 1)
			return res.Allowed, err
		}},
		{"evalsha-per-decision", func(ctx context.Context, key string) (bool, error) {
			rk, _ := redisKey("rl:", GCRA, lim, key)
			v, err := runScript(ctx, rdb, s.decide, []string{rk}, 1, int(GCRA), lim.Rate, lim.Period.Microseconds(), lim.Burst, 0, 1, 1, 1)
			return err == nil && v[0] == 1, err
		}},
		{"redis_rate-gcra", func(ctx context.Context, key string) (bool, error) {
			v, err := rr.Run(ctx, rdb, []string{"rr:" + key}, lim.Burst, lim.Rate, int(lim.Period/time.Second), 1).Slice()
			return err == nil && v[0].(int64) > 0, err
		}},
	}
	// 1024 keys: many tenants, few decisions on one key in a flush; one
	// key: one busy tenant, as in the end-to-end benchmark.
	for _, keys := range []int{1024, 1} {
		for _, callers := range []int{1, 16, 64} {
			for _, impl := range impls {
				name := fmt.Sprintf("%s/callers=%d", impl.name, callers)
				if keys == 1 {
					name = fmt.Sprintf("%s/one-key/callers=%d", impl.name, callers)
				}
				b.Run(name, func(b *testing.B) {
					fallbacks.Store(0)
					redis0, own0 := redisCPU(b, rdb), processCPU(b)
					n := runDecisions(b, callers, keys, impl.decide)
					redisUsed, ownUsed := redisCPU(b, rdb)-redis0, processCPU(b)-own0
					b.ReportMetric(float64(fallbacks.Load()), "fallbacks")
					b.ReportMetric(float64(redisUsed.Microseconds())/float64(n), "redis-cpu-µs/decision")
					b.ReportMetric(float64(ownUsed.Microseconds())/float64(n), "go-cpu-µs/decision")
				})
			}
		}
	}
}

// runDecisions drives decide from `callers` goroutines over `keys` keys
// and reports decisions/s and the p99 latency.
func runDecisions(b *testing.B, callers, keys int, decide decider) int {
	ctx := context.Background()
	var mu sync.Mutex
	var lat []time.Duration
	record := func(l []time.Duration) {
		mu.Lock()
		lat = append(lat, l...)
		mu.Unlock()
	}
	var next atomic.Int64
	one := func() time.Duration {
		key := "bench:" + strconv.FormatInt(next.Add(1)%int64(keys), 10)
		start := time.Now()
		ok, err := decide(ctx, key)
		if err != nil || !ok {
			b.Errorf("decision: %v, %v", ok, err)
		}
		return time.Since(start)
	}
	start := time.Now()
	if callers == 1 {
		l := make([]time.Duration, 0, 1024)
		for b.Loop() {
			l = append(l, one())
		}
		record(l)
	} else {
		b.SetParallelism(max(callers/runtime.GOMAXPROCS(0), 1))
		b.RunParallel(func(pb *testing.PB) {
			l := make([]time.Duration, 0, 1024)
			for pb.Next() {
				l = append(l, one())
			}
			record(l)
		})
	}
	elapsed := time.Since(start)
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "decisions/s")
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	return len(lat)
}

// redisCPU is the CPU time the server has used (INFO cpu, user + sys).
func redisCPU(b *testing.B, rdb *redis.Client) time.Duration {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

type fallbackCounter struct {
	NopObserver
	n *atomic.Int64
}

func (f fallbackCounter) ObserveDecision(d Decision) {
	if d.Source != SourceRedis {
		f.n.Add(1)
	}
}
