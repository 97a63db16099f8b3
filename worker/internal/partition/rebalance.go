package partition

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/stream"
)

// rebalance reads the slots now assigned to this worker that it does not
// read yet, and hands over those it reads that are no longer its own:
// each on its own goroutine (on wg), which unpins the consumer once the
// pipeline has settled its messages. A slot assigned back while its
// handover is under way is read again at once: waiting for the handover
// would leave it unread, as its new owner has just given it up.
func (m *Member) rebalance(ctx context.Context, wg *sync.WaitGroup) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, listed := m.members[m.cfg.ID]; !listed {
		// Not listed yet (the watch has not delivered our own key), or
		// expired: keep what it reads until it is listed again, rather
		// than dropping everything on a missed heartbeat.
		return
	}
	m.members[m.cfg.ID] = m.canWrite() // its own, not the last one the others saw
	members := Writers(m.members)
	m.noteWithdrawal(members)
	defer func() {
		if m.cfg.Metrics != nil {
			m.cfg.Metrics.owned.Set(float64(len(m.owned)))
		}
	}()
	want := Assign(members, m.cfg.ID, len(m.cfg.Slots))
	for s := range m.owned {
		if slices.Contains(want, s) {
			continue
		}
		delete(m.owned, s)
		cons := m.cfg.Slots[s]
		name := cons.CachedInfo().Name
		done := m.rd.Release(name)
		m.releasing[s] = done
		m.cfg.Log.Info("handing partition over", "consumer", name, "members", len(members))
		wg.Go(func() {
			select {
			case <-done:
			case <-ctx.Done():
				return // Leave unpins it after the shutdown cut and upload
			}
			m.mu.Lock()
			handed := m.releasing[s] == done
			if handed {
				delete(m.releasing, s)
			}
			m.mu.Unlock()
			if !handed {
				return // taken back: this worker reads it again
			}
			m.unpin(ctx, name)
			m.cfg.Log.Info("partition handed over", "consumer", name)
		})
	}
	for _, s := range want {
		if m.owned[s] {
			continue
		}
		if _, ok := m.releasing[s]; ok {
			delete(m.releasing, s)
			m.cfg.Log.Info("taking partition back before its handover completed", "consumer", m.cfg.Slots[s].CachedInfo().Name)
		}
		m.owned[s] = true
		cons := m.cfg.Slots[s]
		m.rd.Acquire(cons.CachedInfo().Name, cons, jetstream.FetchPriorityGroup(stream.PriorityGroup))
		m.cfg.Log.Info("reading partition", "consumer", cons.CachedInfo().Name, "members", len(members))
	}
}

// unpin makes the server pin the consumer's next puller at once, rather
// than after PinnedTTL.
func (m *Member) unpin(ctx context.Context, consumer string) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	st, err := m.cfg.JS.Stream(uctx, m.cfg.Stream)
	if err == nil {
		err = st.UnpinConsumer(uctx, consumer, stream.PriorityGroup)
	}
	if err != nil {
		m.cfg.Log.Warn("unpin consumer; the next owner is served after the pinned TTL", "consumer", consumer, "err", err)
	}
}
