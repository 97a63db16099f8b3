package pipeline

import (
	"sync"
	"time"

	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// What the pipeline holds, for the manifest tracker: a tenant's hour may
// close only when none of its messages is held here. A message is held from
// the moment it is checked (gathered, or sent to its lookup) until its
// object's upload ends or its open object is handed back.

// HourWatcher is told of every message fetched, before it is gathered: its
// metadata, the consumer that delivered it and its stream sequence. It
// may record the tenant-hour somewhere durable on its first message from
// that consumer, so that the record precedes any ack of the hour.
type HourWatcher interface {
	Seen(m envelope.Meta, source string, seq uint64)
}

type hourKey struct {
	tenant string
	hour   time.Time
}

type holding struct {
	mu     sync.Mutex
	byHour map[hourKey]int
}

func (h *holding) add(it object.Item) {
	hk := hourKey{it.Meta.Tenant, it.Meta.ReceivedAt.UTC().Truncate(time.Hour)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byHour == nil {
		h.byHour = map[hourKey]int{}
	}
	h.byHour[hk]++
}

// done counts a settled object's messages out.
func (h *holding) done(bt *object.Object) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, it := range bt.Items {
		hk := hourKey{it.Meta.Tenant, it.Meta.ReceivedAt.UTC().Truncate(time.Hour)}
		if h.byHour[hk]--; h.byHour[hk] <= 0 {
			delete(h.byHour, hk)
		}
	}
}

// Holding reports whether the pipeline holds a message of tenant's hour.
func (p *Pipeline) Holding(tenant string, hour time.Time) bool {
	p.holding.mu.Lock()
	defer p.holding.mu.Unlock()
	return p.holding.byHour[hourKey{tenant, hour.UTC().Truncate(time.Hour)}] > 0
}
