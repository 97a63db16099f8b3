package limiter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"
)

// janitor sweeps expired deny-cache entries and idle local state, and
// charges Redis what fallbacks admitted if a decision's charge failed.
func (l *Limiter) janitor() {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.janitorInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case now := <-t.C:
			if l.deny != nil {
				l.deny.sweep(now)
			}
			l.local.sweep(now)
			if l.allot != nil {
				l.allot.sweep(now)
			}
			if l.local.owes() && l.br.State() == BreakerClosed {
				l.repay()
			}
		}
	}
}

// repay tells Redis what fallbacks admitted (see takeDebts), so that over
// an outage a key gets no more than its limit allows in all: each owing
// key's state in Redis is raised to at least what its local bucket says is
// used (raised, not added to: each instance's bucket estimates the whole
// key, and Redis may know part of it already), in one decide script call,
// one per slot on a cluster. Debts that could not be told are owed again.
func (l *Limiter) repay() {
	ds := l.local.takeDebts(time.Now())
	if len(ds) == 0 {
		return
	}
	calls := make([]*call, len(ds))
	for i, d := range ds {
		lim := d.lim
		lim.Burst = -1 // raise (see lua/decide.lua)
		calls[i] = &call{keys: []string{d.key}, lims: []Limit{lim}, costs: []int{d.used}}
	}
	groups := [][]int{make([]int, len(calls))}
	for i := range groups[0] {
		groups[0][i] = i
	}
	if l.cluster {
		n := len(l.cfg.prefix)
		groups = bySlot(len(calls), func(i int) uint16 { return slot(ds[i].key[n+1 : n+17]) })
	}
	invs := make([]invocation, len(groups))
	for g, idx := range groups {
		part := make([]entry, len(idx))
		for k, i := range idx {
			part[k] = entry{calls[i]}
		}
		invs[g].keys, invs[g].args = compose(part, false)
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(l.cfg.lateAnswer, l.cfg.deadline))
	defer cancel()
	for g, r := range evalAll(ctx, l.rdb, l.s.decide, invs) {
		if r.err == nil {
			continue
		}
		l.cfg.observer.ObserveBackendError("repay", r.err)
		back := make([]debt, len(groups[g]))
		for k, i := range groups[g] {
			back[k] = ds[i]
		}
		l.local.giveBack(back)
	}
}

func (l *Limiter) instancesKey() string { return l.cfg.prefix + "{instances}" }

// heartbeat keeps this instance in the Redis heartbeat set and learns how
// many instances are alive, for the fallback's share of each limit.
func (l *Limiter) heartbeat() {
	defer l.wg.Done()
	beat := func() {
		timeout := max(l.cfg.deadline, l.cfg.lateAnswer)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		ttl := 3 * l.cfg.heartbeat
		v, err := l.within(ctx, timeout, func(ctx context.Context) ([]int64, error) {
			return runScript(ctx, l.rdb, l.s.heartbeat, []string{l.instancesKey()}, l.cfg.instanceID, ttl.Microseconds())
		})
		if err != nil {
			l.cfg.observer.ObserveBackendError("heartbeat", err)
			return
		}
		if len(v) == 1 && v[0] > 0 {
			l.local.instances.Store(v[0])
		}
	}
	beat()
	t := time.NewTicker(l.cfg.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			beat()
		}
	}
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
