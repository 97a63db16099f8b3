package limiter

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// call is one AllowAll on its way to Redis.
type call struct {
	keys  []string
	lims  []Limit // normalized
	costs []int
	slots []uint16 // cluster clients only
	slot  uint16
	out   []int64
	err   error
	done  chan struct{} // receives one value when out and err are set
	// state is callQueued until a flusher sends c (callSent, sentAt set
	// just before) or its caller gives up waiting for that
	// (callAbandoned): whichever comes first wins, so an abandoned call
	// never reaches Redis.
	state  atomic.Int32
	sentAt atomic.Int64 // unix nanoseconds
	// queued: c was handed to the flushers; answered: the caller then
	// received done, so no flusher holds c any more.
	queued, answered bool
	// ukey is the caller's key of a single-request call (allotments are
	// kept by it). extra > 0 makes c a refill of that many units for the
	// allotment of its key (allot.go), which no caller waits for.
	ukey  string
	extra int

	// Storage for the common single-request call: one allocation. out1
	// holds its answer when it was decided in an aggregated entry.
	out1  [4]int64
	key1  [1]string
	lim1  [1]Limit
	cost1 [1]int
	slot1 [1]uint16
}

// States of a call handed to the flushers.
const (
	callQueued int32 = iota
	callSent
	callAbandoned
)

func (l *Limiter) newCall(n int) *call {
	if n == 1 {
		if c, _ := l.calls.Get().(*call); c != nil {
			return c
		}
	}
	c := &call{done: make(chan struct{}, 1)}
	if n == 1 {
		c.keys, c.lims, c.costs, c.slots = c.key1[:], c.lim1[:], c.cost1[:], c.slot1[:]
		return c
	}
	c.keys, c.lims, c.costs, c.slots = make([]string, n), make([]Limit, n), make([]int, n), make([]uint16, n)
	return c
}

// recycle returns a single-request call to the pool: one never handed to
// the flushers (answered locally, or by a script call that returned), or
// one whose answer was received. A call its caller gave up on may still be
// held by a flusher and is left to the garbage collector.
func (l *Limiter) recycle(c *call) {
	if c.queued && !c.answered || len(c.keys) != 1 {
		return
	}
	c.out, c.err, c.queued, c.answered, c.slot, c.ukey, c.extra = nil, nil, false, false, 0, "", 0
	c.state.Store(callQueued)
	c.sentAt.Store(0)
	c.key1, c.lim1, c.cost1, c.slot1 = [1]string{}, [1]Limit{}, [1]int{}, [1]uint16{}
	l.calls.Put(c)
}

func (c *call) finish(out []int64, err error) {
	c.out, c.err = out, err
	c.done <- struct{}{} // buffered: never blocks, even if the caller left
}

// send marks c as sent at now, unless its caller gave up first.
func (c *call) send(now time.Time) bool {
	c.sentAt.Store(now.UnixNano())
	return c.state.CompareAndSwap(callQueued, callSent)
}

// sent reports when c was sent, if it was.
func (c *call) sent() (time.Time, bool) {
	if c.state.Load() != callSent {
		return time.Time{}, false
	}
	return time.Unix(0, c.sentAt.Load()), true
}

// abandon gives up on c if no flusher has sent it yet.
func (c *call) abandon() bool { return c.state.CompareAndSwap(callQueued, callAbandoned) }

// await hands c to the flushers and waits for its answer (see waitFor).
func (l *Limiter) await(ctx context.Context, c *call) ([]int64, error) {
	queuedAt := time.Now()
	select {
	case l.queue <- c: // fast path: room in the queue
	default:
		if err := l.enqueue(ctx, c, queuedAt); err != nil {
			return nil, err
		}
	}
	c.queued = true
	if err := l.waitFor(ctx, c.done, c, queuedAt, l.patience); err != nil {
		return nil, err
	}
	c.answered = true
	return c.out, c.err
}

// enqueue waits for room in the queue (every flusher is busy and the queue
// is full) as long as a decision may wait for a flusher.
func (l *Limiter) enqueue(ctx context.Context, c *call, queuedAt time.Time) error {
	t := time.NewTimer(l.patience())
	defer t.Stop()
	for {
		select {
		case l.queue <- c:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-l.stop:
			return ErrClosed
		case <-t.C:
			left := l.left(l.patience(), queuedAt)
			if left <= 0 {
				return errQueued
			}
			t.Reset(left)
		}
	}
}

// flusher takes whatever calls queued up (up to flushMax, waiting at most
// flushDelay for more, and for a flush in flight: see behind) and
// decides them in one flush, one round trip. One flusher at a time collects (it holds
// l.turn until it sends).
func (l *Limiter) flusher() {
	defer l.wg.Done()
	calls := make([]*call, 0, l.cfg.flushMax)
	for {
		select {
		case l.turn <- struct{}{}:
		case <-l.stop:
			return
		}
		select {
		case c := <-l.queue:
			calls = append(calls, c)
		case <-l.stop:
			<-l.turn
			return
		}
		calls = l.behind(l.fill(calls))
		l.inflight.Add(1)
		<-l.turn
		l.flush(calls)
		if l.inflight.Add(-1) == 0 {
			select {
			case l.landed <- struct{}{}:
			default: // a token is there already
			}
		}
		clear(calls)
		calls = calls[:0]
	}
}

// behind holds a flush that has room while another flusher's round trip is
// in flight, taking the calls that queue meanwhile, until it lands, the
// deadline passes or the flush is full: one round trip carries what arrived
// during the previous one. Once Redis has failed nothing is held.
func (l *Limiter) behind(calls []*call) []*call {
	if len(calls) >= l.cfg.flushMax || l.inflight.Load() == 0 || !l.br.patient() {
		return calls
	}
	t := time.NewTimer(l.cfg.deadline)
	defer t.Stop()
	for len(calls) < l.cfg.flushMax && l.inflight.Load() > 0 {
		select {
		case c := <-l.queue:
			calls = append(calls, c)
		case <-l.landed:
		case <-t.C:
			return calls
		case <-l.stop:
			return calls
		}
	}
	return calls
}

func (l *Limiter) fill(calls []*call) []*call {
	for len(calls) < l.cfg.flushMax {
		select {
		case c := <-l.queue:
			calls = append(calls, c)
			continue
		default:
		}
		break
	}
	if l.cfg.flushDelay <= 0 || len(calls) >= l.cfg.flushMax {
		return calls
	}
	t := time.NewTimer(l.cfg.flushDelay)
	defer t.Stop()
	for len(calls) < l.cfg.flushMax {
		select {
		case c := <-l.queue:
			calls = append(calls, c)
		case <-t.C:
			return calls
		}
	}
	return calls
}

// flush sends calls in one round trip: on a single Redis one script for
// all of them (each call its own all-or-nothing group); on a cluster one
// script per slot, in one pipeline. Calls whose caller gave up before they were sent are
// dropped, so a Redis that comes back does not consume for answers nobody
// waits for.
func (l *Limiter) flush(calls []*call) {
	now := time.Now()
	live := calls[:0]
	for _, c := range calls {
		if c.send(now) {
			live = append(live, c)
		}
	}
	if len(live) == 0 {
		return
	}
	// The flusher waits as long as a patient caller would; callers that
	// stopped waiting sooner get their fallback meanwhile.
	ctx, cancel := context.WithTimeout(context.Background(), max(l.cfg.lateAnswer, l.cfg.deadline))
	defer cancel()
	if !l.cluster {
		l.flushGroup(ctx, live, l.rdb)
		return
	}
	groups := bySlot(len(live), func(i int) uint16 { return live[i].slot })
	if len(groups) == 1 {
		l.flushGroup(ctx, live, l.rdb)
		return
	}
	parts := make([][]entry, len(groups))
	invs := make([]invocation, len(groups))
	for g, idx := range groups {
		group := make([]*call, len(idx))
		for k, i := range idx {
			group[k] = live[i]
		}
		parts[g] = l.attach(aggregate(group), now)
		invs[g].keys, invs[g].args = compose(parts[g], false)
	}
	for g, r := range evalAll(ctx, l.rdb, l.s.decide, invs) {
		l.distribute(parts[g], r.v, r.err)
	}
}

func (l *Limiter) flushGroup(ctx context.Context, calls []*call, rdb redis.Scripter) {
	entries := l.attach(aggregate(calls), time.Now())
	keys, args := compose(entries, false)
	out, err := runScript(ctx, rdb, l.s.decide, keys, args...)
	l.distribute(entries, out, err)
}
