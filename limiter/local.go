package limiter

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// local is the in-process fallback of ModeLocal and ModeOpen: a GCRA bucket
// per key enforcing the limit divided by the live instances (last counted by
// the Redis heartbeat; 1 before it), and a lease count per Concurrency key.
// While Redis decides, buckets learn its answers (learn); a key a fallback
// admitted on owes Redis its state once it is back (debts).
type local struct {
	maxKeys   int
	instances atomic.Int64
	debtors   atomic.Int64 // buckets with debt > 0

	mu      sync.Mutex
	buckets map[string]*bucket              // redis key -> bucket
	leases  map[string]map[string]time.Time // redis key -> lease id -> expiry
}

// bucket is one key's local GCRA state, in the time of the whole limit:
// tat - now is how long the key (all instances together) needs to be full
// again.
type bucket struct {
	tat  time.Time // theoretical arrival time
	lim  Limit     // the limit it was last decided under
	debt int       // cost admitted without Redis since Redis last learned of it
}

func newLocal(maxKeys int) *local {
	lc := &local{maxKeys: maxKeys, buckets: map[string]*bucket{}, leases: map[string]map[string]time.Time{}}
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

// learn records Redis's answers out (4 integers per line of entries, as
// the decide script returns them) at now: the second of each is the
// capacity left of its key's limit (after all of an aggregated line).
func (lc *local) learn(entries []entry, out []int64, now time.Time) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if len(lc.buckets) >= lc.maxKeys {
		lc.sweepLocked(now)
	}
	off := 0
	for _, e := range entries {
		c := e[0]
		for k, key := range c.keys {
			lc.learnLocked(key, c.lims[k], int(out[off+1]), now)
			off += 4
		}
	}
}

func (lc *local) learnLocked(key string, lim Limit, remaining int, now time.Time) {
	used := max(lim.capacity()-remaining, 0)
	tat := now.Add(time.Duration(float64(used) * float64(lim.Period) / float64(lim.Rate)))
	if b := lc.buckets[key]; b != nil {
		// A bucket that owes Redis knows more than this answer (which may
		// come late, from a command sent before a fallback): it is only
		// raised until Redis learns of it.
		if b.debt == 0 || tat.After(b.tat) {
			b.tat = tat
		}
		b.lim = lim
		return
	}
	lc.buckets[key] = &bucket{tat: tat, lim: lim}
}

// allow decides reqs all-or-nothing against the local buckets. With
// onlyKnown (ModeOpen), a key without a bucket is allowed and left without
// one.
func (lc *local) allow(reqs []localReq, now time.Time, out []Result, onlyKnown bool) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if len(lc.buckets) >= lc.maxKeys {
		lc.sweepLocked(now)
	}
	k := float64(max(lc.instances.Load(), 1))
	newTats := make([]time.Time, len(reqs))
	ok := true
	for i, r := range reqs {
		b := lc.buckets[r.key]
		if b == nil && onlyKnown {
			out[i] = Result{Allowed: true, Limit: r.lim, Fallback: true}
			continue
		}
		em := time.Duration(math.Ceil(float64(r.lim.Period) * k / float64(r.lim.Rate)))
		burst := max(lc.share(r.lim.Burst), min(r.cost, r.lim.Burst))
		var tat time.Time
		if b != nil {
			tat = b.tat
		}
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
		b := lc.buckets[r.key]
		if newTats[i].IsZero() { // ModeOpen, a key without a bucket
			continue
		}
		if b == nil {
			b = &bucket{}
			lc.buckets[r.key] = b
		}
		b.tat, b.lim = newTats[i], r.lim
		if b.debt == 0 {
			lc.debtors.Add(1)
		}
		b.debt += r.cost
	}
}

// owes reports whether some fallback admission is not charged to Redis yet.
func (lc *local) owes() bool { return lc.debtors.Load() > 0 }

// debt is what Redis must learn of one key: used of its limit's capacity
// (in units of the whole limit) is taken, by this instance's estimate.
type debt struct {
	key  string
	lim  Limit
	used int
}

// takeDebts returns, for each key a fallback admitted something on, how
// much of its limit its bucket says is used at now, and forgets that it
// owes (see giveBack). The bucket runs at this instance's share, but its
// state is in the time of the whole limit: with every instance taking its
// share, it estimates the whole key.
func (lc *local) takeDebts(now time.Time) []debt {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	var ds []debt
	for key, b := range lc.buckets {
		if b.debt == 0 {
			continue
		}
		em := float64(b.lim.Period) / float64(b.lim.Rate)
		if used := int(math.Ceil(float64(b.tat.Sub(now)) / em)); used > 0 {
			ds = append(ds, debt{key: key, lim: b.lim, used: min(used, b.lim.capacity())})
		}
		b.debt = 0
	}
	lc.debtors.Store(0)
	return ds
}

// giveBack owes ds again (charging them failed).
func (lc *local) giveBack(ds []debt) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	for _, d := range ds {
		b := lc.buckets[d.key]
		if b == nil {
			b = &bucket{lim: d.lim}
			lc.buckets[d.key] = b
		}
		if b.debt == 0 {
			lc.debtors.Add(1)
		}
		b.debt++
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

// sweepLocked drops full buckets that owe nothing (their state is the
// default) and expired leases; if the map is still too big it starts over,
// which can only let a key burst once more and forgets its debt.
func (lc *local) sweepLocked(now time.Time) {
	for k, b := range lc.buckets {
		if !b.tat.After(now) && b.debt == 0 {
			delete(lc.buckets, k)
		}
	}
	if len(lc.buckets) >= lc.maxKeys {
		clear(lc.buckets)
		lc.debtors.Store(0)
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
