package ledger

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Tally adds up increments in memory, per kind, tenant and hour, and
// flushes them to the counter stream every interval: one publish per
// tenant-hour per flush instead of one per request. A crash loses at most
// one interval's counts; a stop flushes the rest; a flush whose PubAck is
// lost is sent again with the same Nats-Msg-Id, so it counts once.
type Tally struct {
	js       jetstream.JetStream
	instance string
	log      *slog.Logger

	mu      sync.Mutex
	pending map[tallyKey]int64
	// unsent are increments already given an id whose publish failed.
	unsent []increment
	flush  uint64
}

type tallyKey struct {
	kind   Kind
	tenant string
	hour   int64 // Unix seconds of the hour
}

type increment struct {
	tallyKey
	n  int64
	id string
}

// NewTally returns an empty tally publishing through js.
func NewTally(js jetstream.JetStream, log *slog.Logger) *Tally {
	return &Tally{js: js, instance: nuid.Next(), log: log, pending: map[tallyKey]int64{}}
}

// Add counts n events of kind for tenant, received at t.
func (t *Tally) Add(kind Kind, tenant string, at time.Time, n int) {
	k := tallyKey{kind, tenant, at.Unix() - at.Unix()%3600}
	t.mu.Lock()
	t.pending[k] += int64(n)
	t.mu.Unlock()
}

// Run flushes every interval until ctx ends, then flushes what is left
// (trying for at most 5 s).
func (t *Tally) Run(ctx context.Context, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if left := t.Flush(fctx); left > 0 {
				t.log.Error("counts not flushed at stop; the counters of their hours are short", "increments", left)
			}
			return nil
		case <-tick.C:
			t.Flush(ctx)
		}
	}
}

// Flush publishes every pending count and returns how many increments
// could not be published (kept for the next flush).
func (t *Tally) Flush(ctx context.Context) int {
	t.mu.Lock()
	incs := t.unsent
	t.unsent = nil
	if len(t.pending) > 0 {
		t.flush++
		prefix := t.instance + "-" + strconv.FormatUint(t.flush, 10) + "-"
		for k, n := range t.pending {
			incs = append(incs, increment{k, n, prefix + string(k.kind) + "-" + k.tenant + "-" + strconv.FormatInt(k.hour, 10)})
		}
		clear(t.pending)
	}
	t.mu.Unlock()
	var failed []increment
	for i, inc := range incs {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := Add(pctx, t.js, inc.kind, inc.tenant, time.Unix(inc.hour, 0), inc.n, inc.id)
		cancel()
		if err != nil { // NATS is away: keep this one and the rest for the next flush
			failed = incs[i:]
			break
		}
	}
	if len(failed) > 0 {
		t.log.Warn("counter flush failed; kept for the next one", "increments", len(failed))
		t.mu.Lock()
		t.unsent = append(t.unsent, failed...)
		t.mu.Unlock()
	}
	return len(failed)
}
