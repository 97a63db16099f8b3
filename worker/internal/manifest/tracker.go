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

// When an hour is closed.
//
// The gateway stamps Sluice-Received-At just before it publishes, so a
// partition's messages are in the stream in received order, give or take
// a publish (at most SLUICE_PUBLISH_TIMEOUT, well under any sensible
// grace). So once this worker has fetched from a tenant's partition a
// message received at or after the hour's end plus the grace, at sequence
// cut, every message of the hour has a sequence below cut, and the hour
// can receive nothing more once the consumer's ack floor reaches cut-1
// (every message below it stored and acked, or dead-lettered) and the
// pipeline holds no message of it. A partition that has delivered
// everything (nothing pending, nothing unacknowledged) is caught up as
// well. The partition's owner then writes the manifest; a worker that no
// longer reads the partition leaves the hour to the next owner, which
// takes up the hour before each hour it sees.

// Pipeline is what the tracker asks the pipeline.
type Pipeline interface {
	Holding(tenant string, hour time.Time) bool
	Reading() []string
}

// ConsumerInfo reads a consumer's state by name.
type ConsumerInfo func(ctx context.Context, name string) (*jetstream.ConsumerInfo, error)

// TrackerConfig wires a Tracker.
type TrackerConfig struct {
	Writer   *Writer
	Pipeline Pipeline
	Info     ConsumerInfo
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

// openHour is an hour to close: the consumer it came from, and how many
// of its messages were fetched (an hour that got one while its manifest
// was being written stays open).
type openHour struct {
	source string
	seen   uint64
}

// Tracker follows the tenant-hours this worker fetches and writes their
// manifests once they are closed.
type Tracker struct {
	cfg TrackerConfig

	mu sync.Mutex
	// open are the hours to close; closed have their manifest.
	open   map[hourKey]*openHour
	closed map[hourKey]bool
	// cuts holds, per consumer and per hour P, the lowest sequence fetched
	// of a message received in [P+grace, P+1h+grace).
	cuts map[string]map[time.Time]uint64
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
	return &Tracker{cfg: cfg, open: map[hourKey]*openHour{}, closed: map[hourKey]bool{}, cuts: map[string]map[time.Time]uint64{}}
}

// Seen records a message fetched from consumer source at stream sequence
// seq. The pipeline calls it for every message.
func (t *Tracker) Seen(m envelope.Meta, source string, seq uint64) {
	hour := m.ReceivedAt.UTC().Truncate(time.Hour)
	p := m.ReceivedAt.UTC().Add(-t.cfg.Grace).Truncate(time.Hour)
	t.mu.Lock()
	defer t.mu.Unlock()
	cuts := t.cuts[source]
	if cuts == nil {
		cuts = map[time.Time]uint64{}
		t.cuts[source] = cuts
	}
	if c, ok := cuts[p]; !ok || seq < c {
		cuts[p] = seq
	}
	k := hourKey{m.Tenant, hour}
	if o := t.open[k]; o != nil {
		o.seen++
		return
	}
	// A message of a closed hour (a late redelivery) reopens it: the
	// objects stored for it get an amended manifest.
	t.open[k] = &openHour{source: source, seen: 1}
	delete(t.closed, k)
	// The hour before may have been left by the partition's former owner.
	prev := hourKey{m.Tenant, hour.Add(-time.Hour)}
	if t.open[prev] == nil && !t.closed[prev] {
		t.open[prev] = &openHour{source: source}
	}
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
	t.mu.Lock()
	type candidate struct {
		k      hourKey
		source string
		seen   uint64
		cut    uint64
		hasCut bool
	}
	var due []candidate
	for k, o := range t.open {
		source := o.source
		if !slices.Contains(reading, source) {
			delete(t.open, k) // the partition's next owner closes it
			continue
		}
		if now.Before(k.hour.Add(time.Hour + t.cfg.Grace)) {
			continue
		}
		c := candidate{k: k, source: source, seen: o.seen}
		for p, seq := range t.cuts[source] {
			if !p.Before(k.hour.Add(time.Hour)) && (!c.hasCut || seq < c.cut) {
				c.cut, c.hasCut = seq, true
			}
		}
		due = append(due, c)
	}
	t.prune(now)
	t.mu.Unlock()

	for _, c := range due {
		if t.cfg.Pipeline.Holding(c.k.tenant, c.k.hour) {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
		info, err := t.cfg.Info(ictx, c.source)
		cancel()
		if err != nil {
			t.cfg.Log.Warn("read consumer for a manifest", "consumer", c.source, "err", err)
			continue
		}
		caughtUp := info.NumPending == 0 && info.NumAckPending == 0
		if !caughtUp && (!c.hasCut || info.AckFloor.Stream+1 < c.cut) {
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
		if o := t.open[c.k]; o != nil && o.seen == c.seen {
			delete(t.open, c.k)
			t.closed[c.k] = true
		}
		t.mu.Unlock()
	}
}

// prune forgets closed hours and cuts older than two days. t.mu is held.
func (t *Tracker) prune(now time.Time) {
	old := now.Add(-48 * time.Hour)
	for k := range t.closed {
		if k.hour.Before(old) {
			delete(t.closed, k)
		}
	}
	for _, cuts := range t.cuts {
		for p := range cuts {
			if p.Before(old) {
				delete(cuts, p)
			}
		}
	}
}
