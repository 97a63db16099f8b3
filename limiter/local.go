package limiter

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// local is the in-process fallback for ModeLocal: a GCRA bucket per key that
// enforces the limit divided by the number of live instances, and a lease
// count per key for Concurrency limits. The instance count comes from the
// Redis heartbeat set while Redis is up; it keeps its last value when Redis
// goes away (1 until the first heartbeat).
type local struct {
	maxKeys   int
	instances atomic.Int64

	mu     sync.Mutex
	tats   map[string]time.Time            // redis key -> theoretical arrival time
	leases map[string]map[string]time.Time // redis key -> lease id -> expiry
}

func newLocal(maxKeys int) *local {
	lc := &local{maxKeys: maxKeys, tats: map[string]time.Time{}, leases: map[string]map[string]time.Time{}}
	lc.instances.Store(1)
	return lc
}

// share divides n among the live instances, rounding up, at least 1.
func (lc *local) share(n int) int {
	k := max(lc.instances.Load(), 1)
	return max(int((int64(n)+k-1)/k), 1)
}

type localReq struct {
	key  string
	lim  Limit
	cost int
}

// allow decides reqs all-or-nothing against the local buckets.
func (lc *local) allow(reqs []localReq, now time.Time, out []Result) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if len(lc.tats) >= lc.maxKeys {
		lc.sweepLocked(now)
	}
	k := float64(max(lc.instances.Load(), 1))
	newTats := make([]time.Time, len(reqs))
	ok := true
	for i, r := range reqs {
		em := time.Duration(math.Ceil(float64(r.lim.Period) * k / float64(r.lim.Rate)))
		burst := max(lc.share(r.lim.Burst), min(r.cost, r.lim.Burst))
		tat := lc.tats[r.key]
		for j := range i { // an earlier request of this call on the same key
			if reqs[j].key == r.key {
				tat = newTats[j]
			}
		}
		if tat.Before(now) {
			tat = now
		}
		newTat := tat.Add(em * time.Duration(r.cost))
		allowAt := newTat.Add(-em * time.Duration(burst))
		res := Result{Limit: r.lim, Fallback: true, ResetAfter: tat.Sub(now)}
		if now.Before(allowAt) {
			ok = false
			res.RetryAfter = allowAt.Sub(now)
			newTats[i] = tat
		} else {
			res.Allowed = true
			res.Remaining = int(now.Sub(allowAt) / em)
			res.ResetAfter = newTat.Sub(now)
			newTats[i] = newTat
		}
		out[i] = res
	}
	if !ok {
		for i := range out {
			out[i].Allowed = false
		}
		return
	}
	for i, r := range reqs {
		lc.tats[r.key] = newTats[i]
	}
}

// acquire takes a local lease: at most the instance's share of max per key.
func (lc *local) acquire(key, id string, lim Limit, now time.Time) Result {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	set := lc.leases[key]
	if set == nil {
		set = map[string]time.Time{}
		lc.leases[key] = set
	}
	first := time.Time{}
	for lid, exp := range set {
		if !now.Before(exp) {
			delete(set, lid)
		} else if first.IsZero() || exp.Before(first) {
			first = exp
		}
	}
	n := lc.share(lim.Rate)
	if len(set) >= n {
		return Result{Limit: lim, Fallback: true, RetryAfter: first.Sub(now), ResetAfter: first.Sub(now)}
	}
	set[id] = now.Add(lim.Period)
	return Result{Allowed: true, Limit: lim, Fallback: true, Remaining: n - len(set), ResetAfter: lim.Period}
}

func (lc *local) release(key, id string) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if set := lc.leases[key]; set != nil {
		delete(set, id)
		if len(set) == 0 {
			delete(lc.leases, key)
		}
	}
}

func (lc *local) sweep(now time.Time) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.sweepLocked(now)
}

// sweepLocked drops full buckets (their state is the default) and expired
// leases; if the map is still too big it starts over, which can only let a
// key burst once more.
func (lc *local) sweepLocked(now time.Time) {
	for k, tat := range lc.tats {
		if !tat.After(now) {
			delete(lc.tats, k)
		}
	}
	if len(lc.tats) >= lc.maxKeys {
		clear(lc.tats)
	}
	for k, set := range lc.leases {
		for id, exp := range set {
			if !now.Before(exp) {
				delete(set, id)
			}
		}
		if len(set) == 0 {
			delete(lc.leases, k)
		}
	}
}
