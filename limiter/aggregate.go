package limiter

import (
	"fmt"
	"math"
	"time"
)

// An entry is what one stretch of a decide invocation answers (see
// lua/decide.lua): one call with a line per key, all-or-nothing; or several
// single-key calls with the same key, limit and cost in one line, which
// Redis answers with how many fit. Redis still decides every unit
// atomically, so a line admits exactly what the calls one by one would.
type entry []*call

// lineKey is what single-key calls must share to be one line.
type lineKey struct {
	key  string
	lim  Limit
	cost int
}

// aggregate lays calls out as entries, in the order of the first call of
// each: a call with several keys is an entry of its own, single-key calls
// on the same key, limit and cost share one, in arrival order. The entries
// are windows of one reordered copy of calls: two allocations and a map
// for the flush, none per call.
func aggregate(calls []*call) []entry {
	of := make([]int, len(calls)) // entry of each call
	var sizes []int
	at := make(map[lineKey]int, len(calls))
	for i, c := range calls {
		if len(c.keys) != 1 {
			of[i] = len(sizes)
			sizes = append(sizes, 1)
			continue
		}
		k := lineKey{key: c.keys[0], lim: c.lims[0], cost: c.costs[0]}
		e, ok := at[k]
		if !ok {
			e = len(sizes)
			at[k] = e
			sizes = append(sizes, 0)
		}
		of[i] = e
		sizes[e]++
	}
	if len(sizes) == len(calls) { // nothing to aggregate
		entries := make([]entry, len(calls))
		for i := range calls {
			entries[i] = calls[i : i+1 : i+1]
		}
		return entries
	}
	ordered := make([]*call, len(calls))
	entries := make([]entry, len(sizes))
	off := 0
	for e, n := range sizes {
		entries[e] = ordered[off : off : off+n]
		off += n
	}
	for i, c := range calls {
		entries[of[i]] = append(entries[of[i]], c)
	}
	return entries
}

// lines is how many lines e takes in the script: one per key of a lone
// call, one for aggregated calls.
func (e entry) lines() int {
	if len(e) == 1 {
		return len(e[0].keys)
	}
	return 1
}

// decisions is how many of e's calls are callers' (not refills).
func (e entry) decisions() int {
	n := 0
	for _, c := range e {
		if c.extra == 0 {
			n++
		}
	}
	return n
}

// count is how many decisions e's line stands for: one per call, and the
// units of its refills.
func (e entry) count() int {
	n := 0
	for _, c := range e {
		n += max(c.extra, 1)
	}
	return n
}

func countLines(entries []entry) int {
	n := 0
	for _, e := range entries {
		n += e.lines()
	}
	return n
}

// compose lays entries out as one decide script invocation: the distinct
// limits once, then (group, limit, cost, count) per line; each entry is its
// own group. refund negates the costs.
func compose(entries []entry, refund bool) ([]string, []any) {
	n := countLines(entries)
	keys := make([]string, 0, n)
	var limits []Limit
	seen := map[Limit]int{}
	index := func(lim Limit) int {
		if i, ok := seen[lim]; ok {
			return i
		}
		limits = append(limits, lim)
		seen[lim] = len(limits)
		return len(limits)
	}
	lines := make([]any, 0, n*4)
	for g, e := range entries {
		c := e[0]
		keys = append(keys, c.keys...)
		for k := range c.keys {
			cost := c.costs[k]
			if refund {
				cost = -cost
			}
			lines = append(lines, g, index(c.lims[k]), cost, e.count())
		}
	}
	args := make([]any, 0, 1+4*len(limits)+len(lines))
	args = append(args, len(limits))
	for _, l := range limits {
		args = append(args, int(l.Algorithm), l.Rate, l.Period.Microseconds(), l.Burst)
	}
	return keys, append(args, lines...)
}

// distribute hands each call its part of out (or err). The local fallback
// state learns from the answers first, under one lock for the flush: once
// a call is finished its caller may reuse it.
func (l *Limiter) distribute(entries []entry, out []int64, err error) {
	if want := 4 * countLines(entries); err == nil && len(out) != want {
		err = fmt.Errorf("decide script returned %d integers, want %d", len(out), want)
	}
	if err == nil {
		l.heard()
		if l.keepsLocal() {
			l.local.learn(entries, out, time.Now())
		}
	}
	off := 0
	for _, e := range entries {
		// Counted before e's callers are answered: each may reuse its call
		// at once. Refills come last in an entry (see attach).
		nd := e.decisions()
		n := 4 * e.lines()
		var line []int64
		switch {
		case err != nil:
			for _, c := range e[:nd] {
				c.finish(nil, err)
			}
		case len(e) == 1 && nd == 1:
			e[0].finish(out[off:off+n:off+n], nil)
		default:
			line = out[off : off+n]
			if nd > 0 {
				e[:nd].expand(line)
			}
		}
		l.allotRefills(e[nd:], nd, line)
		off += n
	}
}

// expand gives each call of an aggregated entry its own answer from the
// line's (allowed, remaining, retry, reset), as if admitted one by one: an
// allowed call sees the remaining capacity plus the cost of the allowed
// units after it; the denied ones see the state the allowed ones left. e
// holds the callers' calls in arrival order; the rest went to refills.
func (e entry) expand(line []int64) {
	allowed, remaining, retry, reset := line[0], line[1], line[2], line[3]
	lim, cost := e[0].lims[0], int64(e[0].costs[0])
	for i, c := range e {
		later := allowed - int64(i) - 1 // allowed units after c
		if later < 0 {
			c.out1 = [4]int64{0, remaining, retry, reset}
		} else {
			c.out1 = [4]int64{1, remaining + later*cost, 0, reset - lim.fillMicros(later*cost)}
		}
		c.finish(c.out1[:], nil)
	}
}

// fillMicros is how much sooner (µs) a key is back to full capacity with
// used less consumed: for GCRA used emission intervals; a window resets
// when it ends, whatever it holds.
func (l Limit) fillMicros(used int64) int64 {
	if l.Algorithm != GCRA || used == 0 {
		return 0
	}
	em := float64(l.Period.Microseconds()) / float64(l.Rate)
	return int64(math.Floor(float64(used) * em))
}
