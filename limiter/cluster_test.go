package limiter

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/limiter/redistest"
)

// keysOnEveryNode returns one key per master of an n-master cluster whose
// slots were split evenly by redistest.StartCluster.
func keysOnEveryNode(prefix string, n int) []string {
	per := 16384 / n
	keys := make([]string, n)
	found := 0
	for i := 0; found < n; i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		node := min(int(slot(keyTag(k)))/per, n-1)
		if keys[node] == "" {
			keys[node] = k
			found++
		}
	}
	return keys
}

func TestClusterExactness(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	// Three keys, one per master: 3 × 2000/s, so that seven processes on two
	// cores (three servers, four race-instrumented hammers) still demand far
	// more than the limit.
	limits := []Limit{
		{Algorithm: GCRA, Rate: 400, Period: 200 * time.Millisecond, Burst: 100},
		{Algorithm: SlidingWindow, Rate: 400, Period: 200 * time.Millisecond},
		{Algorithm: FixedWindow, Rate: 400, Period: 200 * time.Millisecond},
	}
	for _, lim := range limits {
		t.Run(lim.Algorithm.String(), func(t *testing.T) {
			exactly(t, lim, func() hammerReport {
				keys := keysOnEveryNode(fmt.Sprintf("cluster:%s:%d:", lim.Algorithm, time.Now().UnixNano()), 3)
				spec := exactnessSpec(lim, keys, 8)
				spec.Addrs = cl.Addrs()
				spec.Cluster = true
				rep := runHammer(t, 4, spec)
				if len(rep.Admitted) != len(keys) {
					t.Fatalf("admitted on %d keys, want %d", len(rep.Admitted), len(keys))
				}
				return rep
			})
		})
	}
}

func TestClusterAllowAllAcrossSlots(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	l := newTestLimiter(t, cl.Client(t), WithDenyCache(false))
	keys := keysOnEveryNode("multi:", 3)
	wide := Limit{Rate: 100, Period: time.Hour}
	narrow := Limit{Algorithm: FixedWindow, Rate: 2, Period: time.Hour}
	reqs := []Request{{Key: keys[0], Limit: wide, Cost: 1}, {Key: keys[1], Limit: wide, Cost: 1}, {Key: keys[2], Limit: narrow, Cost: 1}}
	for i := range 5 {
		res, err := l.AllowAll(t.Context(), reqs)
		if err != nil {
			t.Fatal(err)
		}
		for j, r := range res {
			if r.Allowed != (i < 2) {
				t.Fatalf("call %d request %d: %+v", i, j, r)
			}
		}
	}
	// The three denied calls were refunded: 98 left on each wide key.
	for _, k := range keys[:2] {
		if res := mustAllow(t, l, t.Context(), k, wide, 1); res.Remaining != 97 {
			t.Fatalf("key %q remaining %d, want 97", k, res.Remaining)
		}
	}
	// Flushed single decisions spread over every node.
	for i := range 30 {
		if res := mustAllow(t, l, t.Context(), fmt.Sprint("spread", i), PerSecond(10), 1); !res.Allowed {
			t.Fatalf("spread%d denied", i)
		}
	}
}
