package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// Config wires the pipeline.
type Config struct {
	// Consumer, when set, is read from the start and for good; a worker
	// with partitions leaves it nil and calls Acquire and Release instead
	// (sources.go).
	Consumer jetstream.Consumer
	// Stream is the events stream's name; empty means Consumer's stream.
	Stream string
	JS     Streams // for dead letters and the incarnation
	Sink   Store
	Limits object.Limits
	// Workers is the number of concurrent uploads (SLUICE_WORKERS).
	Workers int
	// MaxInflightBytes bounds the bytes held in open objects and uploads
	// (SLUICE_MAX_INFLIGHT_BYTES). When reached, the pipeline stops
	// fetching until an upload finishes.
	MaxInflightBytes int64
	// MaxMessageBytes is the largest message the server can deliver (the
	// NATS max_payload, headers and body). A fetch always has room for
	// one such message with its subjects (fetchSlack), or a large message
	// would never be delivered; it is the bound's overshoot.
	MaxMessageBytes int
	// FetchMessages bounds the messages of one fetch request.
	FetchMessages int
	// MaxDeliver is SLUICE_MAX_DELIVER: a message delivered for the
	// MaxDeliver-th time or later (the server's count, in its metadata,
	// less the hand-backs of workers that could not write recorded in
	// HandBacks) goes to the dead-letter stream instead of an object. The
	// consumer itself redelivers without limit. Zero means unlimited.
	MaxDeliver int
	// HandBacks records the hand-backs of a worker that cannot write
	// (handback.go); nil counts them as deliveries.
	HandBacks HandBackLog
	// DeadLetterRetry is how long a message whose dead letter was refused
	// waits in the events stream before it is delivered (and its dead
	// letter tried) again.
	DeadLetterRetry time.Duration
	// HandBackDelay is how long a message handed back by a worker that
	// cannot write waits before it is delivered to any worker again.
	HandBackDelay time.Duration
	// KeepAlive is how often messages held in objects and uploads are told
	// InProgress. It must be well under the consumer's AckWait.
	KeepAlive time.Duration
	// RetryMin and RetryMax bound the backoff between upload attempts.
	RetryMin, RetryMax time.Duration
	// ShutdownTimeout bounds the final cut and upload, counted from the end of the
	// last fetch (at most a second after the context ends).
	ShutdownTimeout time.Duration
	// Hours, when set, is told of every tenant-hour fetched (holding.go).
	Hours   HourWatcher
	Metrics *Metrics
	Log     *slog.Logger

	// Record writes receipts and counters before messages are acked or
	// terminated (record.go); nil records nothing.
	Record Recorder
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 1
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 1 << 20
	}
	if c.FetchMessages <= 0 {
		c.FetchMessages = 4096
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 10 * time.Second
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 200 * time.Millisecond
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(10*time.Second, c.RetryMin)
	}
	if c.DeadLetterRetry <= 0 {
		c.DeadLetterRetry = 30 * time.Second
	}
	if c.HandBackDelay <= 0 {
		c.HandBackDelay = 5 * time.Second
	}
}

// Pipeline consumes, gathers objects, uploads and acknowledges. Held messages are
// kept alive with InProgress every KeepAlive (open and waiting objects, and
// each upload for its own), so AckWait only decides how fast a crashed
// worker's messages are redelivered, whatever the object age or S3 outage.
type Pipeline struct {
	cfg    Config
	open   *object.Open
	budget *budget
	// queue holds objects that are cut and wait for an uploader; busy
	// counts objects handed to uploaders. Both belong to Run's goroutine.
	queue []*object.Object
	busy  int
	// inc is the stream's incarnation, kept by the fetch goroutine; regather
	// looks up redelivered messages among stored objects.
	inc      *incarnation
	regather *regather
	// writable is whether the worker can write to S3 (writable.go);
	// refusedLog throttles the log of refused dead letters.
	writable   writable
	recovery   recovery // wakes the uploads waiting to retry
	refusedLog logEvery
	// sources are the consumers read; releases carries their handovers
	// to Run, which completes them (releasing, busyFrom) and closes
	// ended when it returns.
	sources   sources
	releases  chan release
	ended     chan struct{}
	releasing map[string]chan struct{}
	busyFrom  map[string]int
	// holding counts the messages held, for manifests (holding.go).
	holding holding
}

// uploaded is an uploader's report on one object.
type uploaded struct {
	source string
	stored bool
}

// New returns a pipeline.
func New(cfg Config) *Pipeline {
	cfg.defaults()
	if cfg.MaxInflightBytes <= 0 {
		cfg.MaxInflightBytes = 256 << 20
	}
	if cfg.Stream == "" && cfg.Consumer != nil {
		cfg.Stream = cfg.Consumer.CachedInfo().Stream
	}
	p := &Pipeline{
		cfg: cfg, open: object.NewOpen(cfg.Limits), budget: newBudget(cfg.MaxInflightBytes),
		inc:      &incarnation{js: cfg.JS, stream: cfg.Stream},
		regather: newRegather(cfg.Sink, cfg.KeepAlive, cfg.Log.Warn),
		releases: make(chan release), ended: make(chan struct{}),
		releasing: map[string]chan struct{}{}, busyFrom: map[string]int{},
	}
	p.sources.active, p.sources.handing = map[string]*source{}, map[string]chan struct{}{}
	p.writable.init()
	p.refusedLog.every = time.Minute
	if cfg.Consumer != nil {
		p.Acquire(cfg.Consumer.CachedInfo().Name, cfg.Consumer)
	}
	return p
}

// InflightBytes is the bytes held now in objects and uploads.
func (p *Pipeline) InflightBytes() int64 { return p.budget.Used() }

// Run consumes until ctx ends. Then, in this order, it stops fetching,
// gathers what the last fetch delivered, cuts every open object, uploads and
// acknowledges them all within ShutdownTimeout of the last fetch's end, and
// returns. Messages it could not store are Nak'ed, so another worker takes
// them at once.
func (p *Pipeline) Run(ctx context.Context) error {
	// Uploads outlive ctx, so the objects cut at shutdown still get stored
	// and acknowledged. They are given up ShutdownTimeout after fetching
	// stopped, never while the last fetch is open: a message Nak'ed then
	// would come straight back into it, once more per Nak, each delivery
	// counting towards MaxDeliver.
	uctx, cancelUploads := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelUploads()
	defer p.endReleases()

	msgs := make(chan []object.Item)
	pulled := make(chan error, 1)
	go func() { pulled <- p.pull(ctx, msgs) }()

	jobs := make(chan *object.Object)
	done := make(chan uploaded, p.cfg.Workers)
	var wg sync.WaitGroup
	for range p.cfg.Workers {
		wg.Go(func() {
			for bt := range jobs {
				done <- uploaded{source: bt.Source, stored: p.upload(uctx, bt)}
			}
		})
	}

	failed := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	keep := time.NewTicker(p.cfg.KeepAlive)
	defer keep.Stop()
	for in := msgs; in != nil || len(p.queue) > 0 || p.busy > 0; {
		p.relievePressure()
		p.settleReleases()
		p.observe()
		var (
			out  chan<- *object.Object
			next *object.Object
		)
		if len(p.queue) > 0 {
			out, next = jobs, p.queue[0]
		}
		d, ok := p.open.NextDue(time.Now())
		if !ok {
			d = time.Hour
		}
		timer.Reset(d)
		select {
		case items, ok := <-in:
			if !ok { // fetching stopped: shutdown
				in = nil
				defer time.AfterFunc(p.cfg.ShutdownTimeout, cancelUploads).Stop()
				p.cut(p.open.All(object.ReasonShutdown)...)
				continue
			}
			now := time.Now()
			for _, it := range items {
				if full := p.open.Add(it, now); full != nil {
					p.cut(full)
				}
			}
		case out <- next:
			p.queue[0] = nil // the uploader owns it now: do not keep it reachable
			p.queue = p.queue[1:]
			p.busy++
			p.busyFrom[next.Source]++
		case u := <-done:
			p.busy--
			p.busyFrom[u.source]--
			if !u.stored {
				failed++
			}
		case r := <-p.releases:
			if !p.sources.handingOver(r) { // acquired again meanwhile
				close(r.done)
				continue
			}
			if old, ok := p.releasing[r.name]; ok { // an earlier handover, taken back
				close(old)
			}
			p.releasing[r.name] = r.done
			p.cut(p.open.From(r.name, object.ReasonHandover)...)
		case <-timer.C:
			p.cut(p.open.Due(time.Now())...)
		case <-keep.C:
			p.handBackOpen()
			p.keepWaiting()
		}
	}
	close(jobs)
	wg.Wait()
	p.observe()
	if err := <-pulled; err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("shutdown: %d objects not stored; their messages will be redelivered", failed)
	}
	return nil
}

// pull runs a fetch goroutine per consumer read (sources.go) and closes
// out when ctx ends, every fetch goroutine has returned and every
// redelivered message is looked up and sent. A fetch goroutine that meets
// a deleted consumer stops them all, and pull returns its error.
func (p *Pipeline) pull(ctx context.Context, out chan<- []object.Item) error {
	defer close(out)
	p.regather.start(out)
	defer p.regather.stop()
	fctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	defer p.checkWrites(fctx)() // writable.go; fctx has ended when pull returns
	var (
		once   sync.Once
		failed error
	)
	p.sources.run(fctx, func(ctx context.Context, s *source) {
		if err := p.fetchFrom(ctx, s, out); err != nil {
			once.Do(func() { failed = err })
			fail(err)
		}
	})
	return failed
}

// cut queues cut objects for upload.
func (p *Pipeline) cut(bts ...*object.Object) {
	for _, bt := range bts {
		p.cfg.Metrics.cuts.WithLabelValues(string(bt.Reason)).Inc()
		p.queue = append(p.queue, bt)
	}
}

// relievePressure cuts the largest open object when the budget is full and
// no upload is running or waiting: without it, fetching would stop until
// the oldest open object reached its age.
func (p *Pipeline) relievePressure() {
	if len(p.queue) > 0 || p.busy > 0 || !p.budget.full() {
		return
	}
	if bt := p.open.Largest(object.ReasonPressure); bt != nil {
		p.cut(bt)
	}
}

// settleReleases completes each handover whose consumer has nothing left
// here: no open object (a late redelivery, looked up after the release, is
// cut at once), none waiting or uploading, none in a lookup.
func (p *Pipeline) settleReleases() {
	for name, done := range p.releasing {
		r := release{name: name, done: done}
		if !p.sources.handingOver(r) { // acquired again: nothing to wait for
			close(done)
			delete(p.releasing, name)
			continue
		}
		p.cut(p.open.From(name, object.ReasonHandover)...)
		if p.busyFrom[name] > 0 || p.regather.holds(name) || slices.ContainsFunc(p.queue, func(bt *object.Object) bool { return bt.Source == name }) {
			continue
		}
		p.sources.handedOver(r)
		close(done)
		delete(p.releasing, name)
		delete(p.busyFrom, name)
	}
}

// endReleases closes ended and every handover not yet complete: Run has
// settled or Nak'ed every message.
func (p *Pipeline) endReleases() {
	close(p.ended)
	for name, done := range p.releasing {
		close(done)
		delete(p.releasing, name)
	}
}

// keepWaiting sends InProgress for every message in an open object or a
// cut one waiting for an uploader. Uploads keep their own messages alive.
func (p *Pipeline) keepWaiting() {
	inProgress := func(bt *object.Object) {
		for _, it := range bt.Items {
			_ = it.Msg.InProgress()
		}
	}
	p.open.Each(inProgress)
	for _, bt := range p.queue {
		inProgress(bt)
	}
}

func (p *Pipeline) observe() {
	p.cfg.Metrics.inflightBytes.Set(float64(p.budget.Used()))
	age := 0.0
	if opened, ok := p.open.Oldest(); ok {
		age = time.Since(opened).Seconds()
	}
	p.cfg.Metrics.openAge.Set(age)
}
