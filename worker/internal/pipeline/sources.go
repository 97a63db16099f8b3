package pipeline

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The consumers the pipeline reads: those of the partitions this worker
// owns, each on its own fetch goroutine, sharing the budget, the open
// objects and the uploaders. Acquire starts reading one; Release stops fetching,
// cuts its open objects (reason handover) and closes its channel once every
// message it delivered is settled, so the next owner starts after them.
// Acquiring a consumer whose handover is not complete takes it back.

// Fetcher is the one call the pipeline makes on a consumer.
type Fetcher interface {
	Fetch(batch int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error)
}

// source is one consumer being read.
type source struct {
	name   string
	cons   Fetcher
	opts   []jetstream.FetchOpt
	cancel context.CancelFunc
	done   chan struct{} // closed when its fetch goroutine returned
	// idle is whether its last fetch delivered nothing, countOnly whether
	// it is fetched by message count alone (fetch.go); only its fetch
	// goroutine uses them after Acquire.
	idle      bool
	countOnly bool
	// progress is what the stall watch reads (stall.go).
	progress progress
}

// release is a handover that Run completes.
type release struct {
	name string
	done chan struct{}
}

// sources holds the consumers being read. The fetch goroutines start when
// pull runs (or at Acquire, after that), and stop at Release or when pull's
// context ends.
type sources struct {
	mu     sync.Mutex
	ctx    context.Context // pull's; nil before pull runs
	ended  bool
	start  func(ctx context.Context, s *source)
	active map[string]*source
	// handing is the handovers not complete yet, by consumer: Acquire
	// takes one back by deleting it.
	handing map[string]chan struct{}
	wg      sync.WaitGroup
}

// handingOver reports whether r is still a handover, not taken back.
func (ss *sources) handingOver(r release) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.handing[r.name] == r.done
}

// handedOver forgets r once it is complete.
func (ss *sources) handedOver(r release) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.handing[r.name] == r.done {
		delete(ss.handing, r.name)
	}
}

// Acquire starts reading cons, named name, with the fetch options opts
// (the priority group of a partition consumer). Acquiring a consumer
// already read does nothing.
func (p *Pipeline) Acquire(name string, cons Fetcher, opts ...jetstream.FetchOpt) {
	ss := &p.sources
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.ended || ss.active[name] != nil {
		return
	}
	delete(ss.handing, name) // taken back, if it was being handed over
	s := &source{name: name, cons: cons, opts: opts, done: make(chan struct{}), countOnly: replicated(cons)}
	s.progress.start(time.Now())
	ss.active[name] = s
	if ss.ctx != nil {
		ss.launch(s)
	}
}

// launch starts s's fetch goroutine. ss.mu is held.
func (ss *sources) launch(s *source) {
	ctx, cancel := context.WithCancel(ss.ctx)
	s.cancel = cancel
	ss.wg.Go(func() {
		defer close(s.done)
		ss.start(ctx, s)
	})
}

// Release stops reading the consumer named name and hands its partition
// over; the channel is closed once every message it delivered is settled,
// or the pipeline has stopped (its shutdown settles them), or Acquire took
// the consumer back first. A consumer not being read is released at once.
func (p *Pipeline) Release(name string) <-chan struct{} {
	done := make(chan struct{})
	ss := &p.sources
	ss.mu.Lock()
	s := ss.active[name]
	delete(ss.active, name)
	running := ss.ctx != nil && !ss.ended
	if s != nil && running {
		ss.handing[name] = done
	}
	ss.mu.Unlock()
	if s == nil || !running {
		close(done)
		return done
	}
	go func() {
		s.cancel()
		<-s.done
		select {
		case p.releases <- release{name: name, done: done}:
		case <-p.ended:
			close(done)
		}
	}()
	return done
}

// Reading is the names of the consumers being read.
func (p *Pipeline) Reading() []string {
	ss := &p.sources
	ss.mu.Lock()
	defer ss.mu.Unlock()
	names := make([]string, 0, len(ss.active))
	for n := range ss.active {
		names = append(names, n)
	}
	return names
}

// run starts the fetch goroutine of every consumer acquired so far, and
// of those acquired later, until ctx ends; it returns once they have all
// returned.
func (ss *sources) run(ctx context.Context, start func(ctx context.Context, s *source)) {
	ss.mu.Lock()
	ss.ctx, ss.start = ctx, start
	for _, s := range ss.active {
		ss.launch(s)
	}
	ss.mu.Unlock()
	<-ctx.Done()
	ss.mu.Lock()
	ss.ended = true
	ss.mu.Unlock()
	ss.wg.Wait()
}

// replicated is whether cons is a consumer with replicas, as its info
// said when it was looked up; false when cons says nothing of it.
func replicated(cons Fetcher) bool {
	c, ok := cons.(interface {
		CachedInfo() *jetstream.ConsumerInfo
	})
	if !ok {
		return false
	}
	info := c.CachedInfo()
	return info != nil && (info.Config.Replicas > 1 || info.Cluster != nil && len(info.Cluster.Replicas) > 0)
}

// list is the sources being read now.
func (ss *sources) list() []*source {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	out := make([]*source, 0, len(ss.active))
	for _, s := range ss.active {
		out = append(out, s)
	}
	return out
}
