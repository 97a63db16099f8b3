package manifest

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/envelope"
)

// When an hour is closed: the hour plus the grace has passed, and neither
// the events stream (settled.go) nor the pipeline holds a message of it.
// The hours checked are those recorded open (hours.go) for the consumers
// this worker reads and those it saw itself, so a former reader's open
// hours are closed by the next, and an hour read from two consumers only
// once both are settled.

// Pipeline is what the tracker asks the pipeline.
type Pipeline interface {
	Holding(tenant string, hour time.Time) bool
	Reading() []string
}

// TrackerConfig wires a Tracker.
type TrackerConfig struct {
	Writer   *Writer
	Pipeline Pipeline
	// Stream is the events stream, asked whether an hour's messages are
	// settled.
	Stream jetstream.Stream
	// Hours records the open hours (OpenHours).
	Hours *Hours
	// Grace is SLUICE_MANIFEST_GRACE: how long after an hour's end a
	// message of it may still arrive.
	Grace time.Duration
	// Every is how often open hours are checked; zero means Grace/2,
	// between 1s and 30s.
	Every time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
}

type hourKey struct {
	tenant string
	hour   time.Time
}

// openHour is an hour this worker saw open: the consumers it came from,
// and how many of its messages were fetched (an hour that got one while
// its manifest was being written stays open).
type openHour struct {
	sources map[string]*seenFrom
	seen    uint64
}

// seenFrom is an open hour's consumer: the sequence of the first message
// of the hour it delivered, and whether the hour is recorded for it.
type seenFrom struct {
	seq      uint64
	recorded bool
}

// Tracker follows the tenant-hours this worker fetches and those recorded
// open for the consumers it reads, and writes their manifests once they
// are closed.
type Tracker struct {
	cfg TrackerConfig

	mu   sync.Mutex
	open map[hourKey]*openHour
	// unrecorded is set while Hours refuses records: Seen then leaves them
	// to CloseHours, rather than have every new hour wait for a refusal.
	unrecorded bool
}

// Attach sets the pipeline the tracker asks, when it could not be in cfg
// (the pipeline is made with the tracker as its HourWatcher). Call it
// before Run.
func (t *Tracker) Attach(p Pipeline) { t.cfg.Pipeline = p }

// NewTracker returns a Tracker; Run writes its manifests.
func NewTracker(cfg TrackerConfig) *Tracker {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Every <= 0 {
		cfg.Every = min(max(cfg.Grace/2, time.Second), 30*time.Second)
	}
	return &Tracker{cfg: cfg, open: map[hourKey]*openHour{}}
}

// recordTimeout bounds a record's wait for the bucket. Seen waits for it
// in the fetch loop, so it stays well under SLUICE_ACK_WAIT's minimum (3s):
// a put takes milliseconds, and a refused one is retried by CloseHours.
const recordTimeout = 2 * time.Second

// Seen records a message fetched from consumer source at stream sequence
// seq. The pipeline calls it for every message, before it goes into an object; only
// the first message of a tenant-hour from a consumer costs a call to
// NATS, which records the hour open before any of its messages can be
// acked.
func (t *Tracker) Seen(m envelope.Meta, source string, seq uint64) {
	k := hourKey{m.Tenant, m.ReceivedAt.UTC().Truncate(time.Hour)}
	t.mu.Lock()
	o := t.open[k]
	if o == nil {
		// A message of a closed hour (a late redelivery) reopens it: the
		// objects stored for it get an amended manifest.
		o = &openHour{sources: map[string]*seenFrom{}}
		t.open[k] = o
	}
	o.seen++
	from, known := o.sources[source]
	if !known {
		from = &seenFrom{seq: seq}
		o.sources[source] = from
	}
	skip := known || t.unrecorded
	t.mu.Unlock()
	if skip {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	err := t.cfg.Hours.record(ctx, k, source, seq)
	cancel()
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.unrecorded = true
		t.cfg.Log.Warn("open hour not recorded; retried with the manifests", "tenant", k.tenant, "hour", k.hour, "err", err)
		return
	}
	from.recorded = true
}

// Run checks the open hours every Every and writes the manifests of those
// closed, until ctx ends.
func (t *Tracker) Run(ctx context.Context) error {
	tick := time.NewTicker(t.cfg.Every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		t.CloseHours(ctx)
	}
}

// CloseHours writes the manifest of every open hour that is closed now.
func (t *Tracker) CloseHours(ctx context.Context) {
	now := t.cfg.Now()
	reading := t.cfg.Pipeline.Reading()
	t.recordAgain(ctx, reading)
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	listed, err := t.cfg.Hours.list(lctx, reading)
	cancel()
	if err != nil {
		t.cfg.Log.Warn("list open hours", "err", err)
	}

	type candidate struct {
		k    hourKey
		seen uint64
	}
	due := map[hourKey]candidate{}
	t.mu.Lock()
	for k := range listed {
		due[k] = candidate{k: k}
	}
	for k, o := range t.open {
		if k.hour.Before(now.Add(-hoursTTL - t.cfg.Grace)) {
			delete(t.open, k) // given up, as its key in Hours is
			continue
		}
		due[k] = candidate{k: k, seen: o.seen}
	}
	t.mu.Unlock()
	for k := range due {
		if now.Before(k.hour.Add(time.Hour + t.cfg.Grace)) {
			delete(due, k)
		}
	}

	for _, c := range due {
		if t.cfg.Pipeline.Holding(c.k.tenant, c.k.hour) {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ok, err := settled(sctx, t.cfg.Stream, c.k.tenant, c.k.hour, t.cfg.Grace)
		cancel()
		if err != nil {
			t.cfg.Log.Warn("read the events stream for a manifest", "tenant", c.k.tenant, "hour", c.k.hour, "err", err)
			continue
		}
		if !ok {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		key, err := t.cfg.Writer.Write(wctx, c.k.tenant, c.k.hour, now)
		cancel()
		switch {
		case errors.Is(err, ErrWrittenMeanwhile):
			continue // compared with it next round
		case err != nil:
			t.cfg.Log.Warn("write manifest", "tenant", c.k.tenant, "hour", c.k.hour, "err", err)
			continue
		case key != "":
			t.cfg.Log.Info("manifest written", "key", key)
		}
		t.mu.Lock()
		o := t.open[c.k]
		again := o != nil && o.seen != c.seen
		if o != nil && !again {
			delete(t.open, c.k)
		}
		t.mu.Unlock()
		if again {
			continue // a message of it was fetched meanwhile
		}
		for source, rev := range listed[c.k] {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := t.cfg.Hours.remove(rctx, c.k, source, rev); err != nil {
				t.cfg.Log.Warn("closed hour left open", "tenant", c.k.tenant, "hour", c.k.hour, "err", err)
			}
			cancel()
		}
	}
}

// recordAgain forgets the sources no longer read (their next reader closes
// the hours recorded for them) and records the hours that Seen could not.
func (t *Tracker) recordAgain(ctx context.Context, reading []string) {
	type rec struct {
		k      hourKey
		source string
		from   *seenFrom
	}
	var todo []rec
	t.mu.Lock()
	for k, o := range t.open {
		for s, from := range o.sources {
			switch {
			case !slices.Contains(reading, s):
				delete(o.sources, s)
			case !from.recorded:
				todo = append(todo, rec{k, s, from})
			}
		}
		if len(o.sources) == 0 {
			delete(t.open, k)
		}
	}
	t.unrecorded = false
	t.mu.Unlock()
	for _, r := range todo {
		rctx, cancel := context.WithTimeout(ctx, recordTimeout)
		err := t.cfg.Hours.record(rctx, r.k, r.source, r.from.seq)
		cancel()
		t.mu.Lock()
		if err != nil {
			t.unrecorded = true
		} else {
			r.from.recorded = true
		}
		t.mu.Unlock()
		if err != nil {
			t.cfg.Log.Warn("open hour not recorded", "tenant", r.k.tenant, "hour", r.k.hour, "err", err)
			return // the next round tries again
		}
	}
}
