package limiter

import (
	"sync"
	"time"
)

// denyCache remembers keys Redis just denied, so that further requests for
// them are denied locally until their RetryAfter, without a round trip.
// It only ever denies, never allows, so it cannot over-admit.
type denyCache struct {
	m sync.Map // redis key -> *denyEntry
}

type denyEntry struct {
	at    time.Time
	until time.Time
	cost  int // requests costing at least this much are denied
	res   Result
}

func (c *denyCache) get(key string, cost int, now time.Time) (Result, bool) {
	v, ok := c.m.Load(key)
	if !ok {
		return Result{}, false
	}
	e := v.(*denyEntry)
	if !now.Before(e.until) {
		c.m.CompareAndDelete(key, v)
		return Result{}, false
	}
	if cost < e.cost {
		return Result{}, false
	}
	r := e.res
	r.RetryAfter = e.until.Sub(now)
	if r.ResetAfter -= now.Sub(e.at); r.ResetAfter < r.RetryAfter {
		r.ResetAfter = r.RetryAfter
	}
	return r, true
}

func (c *denyCache) put(key string, cost int, res Result, now time.Time) {
	if res.RetryAfter <= 0 {
		return
	}
	c.m.Store(key, &denyEntry{at: now, until: now.Add(res.RetryAfter), cost: cost, res: res})
}

func (c *denyCache) sweep(now time.Time) {
	c.m.Range(func(k, v any) bool {
		if !now.Before(v.(*denyEntry).until) {
			c.m.CompareAndDelete(k, v)
		}
		return true
	})
}
