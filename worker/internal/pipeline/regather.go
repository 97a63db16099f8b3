package pipeline

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/objkey"
	"github.com/sluice-ingest/sluice/worker/internal/object"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

// Regathering redelivered messages: an object's key is its sequences, written
// once, so a message redelivered between "stored" and "acked" is gathered only
// with the other messages of the stored object that holds it, and the upload
// meets that object's 412 and acks without a second copy. Lookups cost S3
// round trips, so they run off the fetch goroutine (docs/decisions.md,
// Redelivered messages are regathered into the object that holds them).

// A listing is reused for a message queued at most keepAlive after it was
// taken: the object holding a redelivered message was stored before its
// holder's last keep-alive ended, AckWait before the redelivery. A failed
// lookup is retried every lookupRetry, the message kept alive, for up to
// lookupPatience (an S3 outage holds the upload anyway); then, or at shutdown,
// the message is gathered as new, which can only add a duplicate.
const (
	lookupRetry    = time.Second
	lookupPatience = 30 * time.Second
)

// lookupWorkers is how many lookups run at once.
const lookupWorkers = 4

// lookupTimeout bounds one S3 call of a lookup.
const lookupTimeout = 5 * time.Second

// maxCached bounds the listings and the object metadata kept: past it,
// the cache starts again empty.
const maxCached = 1024

// regather looks up redelivered messages and hands them to Run.
type regather struct {
	s3        storedObjects
	keepAlive time.Duration
	warn      func(msg string, args ...any)

	mu   sync.Mutex
	wake *sync.Cond
	// queue waits for a lookup; looking[i] is the message lookup worker i
	// is on. Both are kept alive.
	queue   []queued
	looking []jetstream.Msg
	// pending counts, per source, the messages queued or in a lookup.
	pending map[string]int
	closing bool
	off     time.Time // no lookup before
	lists   map[listKey]*cached[[]objkey.Key]
	objects map[string]*cached[sink.Stored]

	out chan<- []object.Item
	// workers are the lookups; alive is the keep-alive, stopped by quit
	// once the lookups are done.
	workers, alive sync.WaitGroup
	quit           chan struct{}
}

// queued is a message waiting for its lookup, since when.
type queued struct {
	it    object.Item
	since time.Time
}

type listKey struct {
	tenant string
	hour   time.Time
}

// cached is one S3 answer, shared by the lookups that need it; ready is
// closed once it is in.
type cached[T any] struct {
	ready chan struct{}
	at    time.Time
	val   T
	err   error
}

func newRegather(s3 storedObjects, keepAlive time.Duration, warn func(string, ...any)) *regather {
	r := &regather{s3: s3, keepAlive: keepAlive, warn: warn, looking: make([]jetstream.Msg, lookupWorkers),
		lists: map[listKey]*cached[[]objkey.Key]{}, objects: map[string]*cached[sink.Stored]{}, pending: map[string]int{}}
	r.wake = sync.NewCond(&r.mu)
	return r
}

// start runs the lookups, which send each message to out once it is looked
// up.
func (r *regather) start(out chan<- []object.Item) {
	r.out, r.quit, r.closing = out, make(chan struct{}), false
	for i := range lookupWorkers {
		r.workers.Go(func() { r.work(i) })
	}
	r.alive.Go(r.keepWaitingAlive)
}

// add queues a redelivered message for its lookup.
func (r *regather) add(it object.Item) {
	r.mu.Lock()
	r.queue = append(r.queue, queued{it: it, since: time.Now()})
	r.pending[it.Source]++
	r.mu.Unlock()
	r.wake.Signal()
}

// stop returns once every queued message is looked up and sent.
func (r *regather) stop() {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	r.wake.Broadcast()
	r.workers.Wait()
	close(r.quit)
	r.alive.Wait()
}

// work is lookup worker i: it looks up queued messages until stop and the
// queue is empty.
func (r *regather) work(i int) {
	for {
		r.mu.Lock()
		for len(r.queue) == 0 && !r.closing {
			r.wake.Wait()
		}
		if len(r.queue) == 0 {
			r.mu.Unlock()
			return
		}
		q := r.queue[0]
		r.queue[0] = queued{}
		r.queue = r.queue[1:]
		it := q.it
		r.looking[i] = it.Msg
		r.mu.Unlock()

		it.Landed = r.lookUp(q)
		r.mu.Lock()
		r.looking[i] = nil
		r.mu.Unlock()
		r.out <- []object.Item{it} // Run keeps it alive from here
		r.mu.Lock()
		if r.pending[it.Source]--; r.pending[it.Source] == 0 {
			delete(r.pending, it.Source)
		}
		r.mu.Unlock()
	}
}

// holds reports whether messages of source are queued or in a lookup.
func (r *regather) holds(source string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pending[source] > 0
}

// keepWaitingAlive sends InProgress for the messages waiting for or in a
// lookup, every keepAlive, until stop.
func (r *regather) keepWaitingAlive() {
	t := time.NewTicker(r.keepAlive)
	defer t.Stop()
	for {
		select {
		case <-r.quit:
			return
		case <-t.C:
		}
		r.mu.Lock()
		waiting := make([]jetstream.Msg, 0, len(r.queue)+len(r.looking))
		for _, q := range r.queue {
			waiting = append(waiting, q.it.Msg)
		}
		for _, m := range r.looking {
			if m != nil {
				waiting = append(waiting, m)
			}
		}
		r.mu.Unlock()
		for _, m := range waiting {
			_ = m.InProgress()
		}
	}
}

// lookUp is landed, tried again every lookupRetry while S3 fails, for up
// to lookupPatience and not after stop began; nil after that.
func (r *regather) lookUp(q queued) *object.Landed {
	for {
		l, ok := r.landed(q.it, q.since.Add(-r.keepAlive))
		if ok {
			return l
		}
		r.mu.Lock()
		closing := r.closing
		r.mu.Unlock()
		if closing || time.Since(q.since) >= lookupPatience {
			return nil
		}
		time.Sleep(lookupRetry)
	}
}

// landed returns the stored object of the message's stream incarnation
// whose key's sequence range holds it (the smallest such range), or nil,
// from a listing taken after listedAfter. ok is false when S3 could not
// tell.
func (r *regather) landed(it object.Item, listedAfter time.Time) (*object.Landed, bool) {
	part := object.PartitionOf(it.Meta, it.Stream)
	prefix := objkey.PartitionPrefix("", part.Tenant, part.Hour)
	keys, ok := lookup(r, r.lists, listKey{part.Tenant, part.Hour}, "list "+prefix, listedAfter, func(ctx context.Context) ([]objkey.Key, error) {
		return r.s3.Stored(ctx, part.Tenant, part.Hour)
	})
	if !ok {
		return nil, false
	}
	var holding []objkey.Key
	for _, k := range keys {
		if k.FirstSeq <= it.Seq && it.Seq <= k.LastSeq && (k.Stream == "" || k.Stream == it.Stream) {
			holding = append(holding, k)
		}
	}
	slices.SortFunc(holding, func(a, b objkey.Key) int {
		return cmp.Or(cmp.Compare(a.LastSeq-a.FirstSeq, b.LastSeq-b.FirstSeq), cmp.Compare(a.String(), b.String()))
	})
	for _, k := range holding {
		key := k.String()
		// Objects are written once: their metadata never change.
		st, ok := lookup(r, r.objects, key, "read the metadata of "+key, time.Time{}, func(ctx context.Context) (sink.Stored, error) {
			return r.s3.StoredObject(ctx, key)
		})
		if !ok {
			return nil, false
		}
		if st.Stream == it.Stream { // another incarnation's, or one that does not say, cannot hold it
			return &object.Landed{Key: key, FirstSeq: k.FirstSeq, LastSeq: k.LastSeq, Events: st.Events}, true
		}
	}
	return nil, true
}

// lookup answers from cache when it holds an answer for key asked after
// after (zero: any), else asks S3 once for all lookups that need it. ok is
// false when the call failed, or one failed less than lookupRetry ago.
func lookup[K comparable, T any](r *regather, cache map[K]*cached[T], key K, what string, after time.Time, call func(context.Context) (T, error)) (T, bool) {
	var zero T
	r.mu.Lock()
	if time.Now().Before(r.off) {
		r.mu.Unlock()
		return zero, false
	}
	c := cache[key]
	if c == nil || c.at.Before(after) {
		if len(cache) > maxCached {
			clear(cache)
		}
		c = &cached[T]{ready: make(chan struct{}), at: time.Now()}
		cache[key] = c
		r.mu.Unlock()
		// The lookup outlives the pipeline's context: the messages of the
		// last fetch at shutdown are regathered too.
		ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
		c.val, c.err = call(ctx)
		cancel()
		r.mu.Lock()
		if c.err != nil {
			if cache[key] == c {
				delete(cache, key)
			}
			r.off = time.Now().Add(lookupRetry)
			r.warn(what+" for redelivered messages failed; trying again", "in", lookupRetry, "err", c.err)
		}
		r.mu.Unlock()
		close(c.ready)
	} else {
		r.mu.Unlock()
		<-c.ready
	}
	if c.err != nil {
		return zero, false
	}
	return c.val, true
}
