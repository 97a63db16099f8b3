package pipeline

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/objkey"
	"github.com/sluice-ingest/sluice/worker/internal/batch"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

// Regathering redelivered messages.
//
// A batch's key is made only of the sequences in it (and, where the plain
// key holds another stream incarnation's object, of its incarnation), so
// the same messages always give the same key, and the key is written once
// (If-None-Match). After a crash between "object stored" and "messages
// acked", the messages come back; if they were batched with newer messages
// they would land a second time under another key. To avoid that, a
// redelivered message is looked up among the objects already stored in its
// partition: when an object of its own stream incarnation holds it in its
// sequence range, it is batched only with the other redelivered messages
// of that object, and that batch is cut as soon as it has the object's
// first and last sequence and event count again. Its upload then meets the
// 412 of the stored object with the same metadata, and its messages are
// acked without a second copy. What this does not cover is in docs/guarantees.md
// ("Duplicates and exactly-once").
//
// Lookups cost S3 round trips, so they run on their own goroutines, never
// on the fetch goroutine: a mass redelivery does not hold the rest of a
// fetch, and the messages waiting for a lookup are kept alive.

// storedTTL is how long a partition's listing is reused, and how long
// lookups stop after one failed. The objects that matter were stored
// before their messages came back (AckWait later).
const storedTTL = 30 * time.Second

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
	queue   []batch.Item
	looking []jetstream.Msg
	// pending counts, per source, the messages queued or in a lookup.
	pending map[string]int
	closing bool
	off     time.Time // no lookup before
	lists   map[listKey]*cached[[]objkey.Key]
	objects map[string]*cached[sink.Stored]

	out chan<- []batch.Item
	// workers are the lookups; alive is the keep-alive, stopped by quit
	// once the lookups are done.
	workers, alive sync.WaitGroup
	quit           chan struct{}
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
func (r *regather) start(out chan<- []batch.Item) {
	r.out, r.quit, r.closing = out, make(chan struct{}), false
	for i := range lookupWorkers {
		r.workers.Go(func() { r.work(i) })
	}
	r.alive.Go(r.keepWaitingAlive)
}

// add queues a redelivered message for its lookup.
func (r *regather) add(it batch.Item) {
	r.mu.Lock()
	r.queue = append(r.queue, it)
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
		it := r.queue[0]
		r.queue[0] = batch.Item{}
		r.queue = r.queue[1:]
		r.looking[i] = it.Msg
		r.mu.Unlock()

		it.Landed = r.landed(it)
		r.mu.Lock()
		r.looking[i] = nil
		r.mu.Unlock()
		r.out <- []batch.Item{it} // Run keeps it alive from here
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
		for _, it := range r.queue {
			waiting = append(waiting, it.Msg)
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

// landed returns the stored object of the message's stream incarnation
// whose key's sequence range holds it, the smallest such range when there
// are several, or nil. Errors mean nil: the message is then batched as a
// fresh one, which can only add a duplicate, never lose it. After a failed
// S3 call no lookup asks S3 anything for storedTTL, so an S3 outage costs
// one failed call (at most lookupTimeout) per storedTTL, not one per
// partition or object.
func (r *regather) landed(it batch.Item) *batch.Landed {
	part := batch.PartitionOf(it.Meta, it.Stream)
	prefix := objkey.PartitionPrefix("", part.Tenant, part.Hour)
	keys, ok := lookup(r, r.lists, listKey{part.Tenant, part.Hour}, "list "+prefix, storedTTL, func(ctx context.Context) ([]objkey.Key, error) {
		return r.s3.Stored(ctx, part.Tenant, part.Hour)
	})
	if !ok {
		return nil
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
		st, ok := lookup(r, r.objects, key, "read the metadata of "+key, 0, func(ctx context.Context) (sink.Stored, error) {
			return r.s3.StoredBatch(ctx, key)
		})
		if !ok {
			return nil
		}
		if st.Stream == it.Stream { // another incarnation's, or one that does not say, cannot hold it
			return &batch.Landed{Key: key, FirstSeq: k.FirstSeq, LastSeq: k.LastSeq, Events: st.Events}
		}
	}
	return nil
}

// lookup answers from cache when it holds an answer for key younger than
// ttl (0: forever), else asks S3 once for all lookups that need it. ok is
// false when the call failed, or failed less than storedTTL ago.
func lookup[K comparable, T any](r *regather, cache map[K]*cached[T], key K, what string, ttl time.Duration, call func(context.Context) (T, error)) (T, bool) {
	var zero T
	r.mu.Lock()
	if time.Now().Before(r.off) {
		r.mu.Unlock()
		return zero, false
	}
	c := cache[key]
	if c == nil || (ttl > 0 && time.Since(c.at) > ttl) {
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
			delete(cache, key)
			r.off = time.Now().Add(storedTTL)
			r.warn(what+" for redelivered messages; they are batched as new ones for a while", "err", c.err)
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
