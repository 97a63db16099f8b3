package partition

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-ingest/sluice/worker/internal/pipeline"
)

// Members that cannot write to S3 leave the assignment, so no partition waits
// for a worker that hands its messages back: a member's value says "writable
// <time>" or "unwritable <time>", put again as soon as it changes, and the
// partitions go to the writers (Writers). A member not checked yet cannot
// write; when none can, every member counts; a value of the time alone can
// (docs/decisions.md, A worker that cannot write leaves the partition assignment).

// Writability is whether this worker can write (the pipeline's).
type Writability interface {
	// Writable is nil while the worker can write.
	Writable() error
	// WritableChanged receives a value when Writable changes.
	WritableChanged() <-chan struct{}
}

const (
	valueWritable   = "writable"
	valueUnwritable = "unwritable"
)

// memberValue is the value of a member's key.
func memberValue(writable bool, now time.Time) []byte {
	state := valueWritable
	if !writable {
		state = valueUnwritable
	}
	return []byte(state + " " + now.UTC().Format(time.RFC3339Nano))
}

// canWrite reads a member's value.
func canWrite(value []byte) bool {
	state, _, _ := strings.Cut(string(value), " ")
	return state != valueUnwritable
}

// Writers is the members that take partitions: those that can write, or
// every member when none can.
func Writers(members map[string]bool) []string {
	var all, writers []string
	for k, w := range members {
		all = append(all, k)
		if w {
			writers = append(writers, k)
		}
	}
	if len(writers) == 0 {
		return all
	}
	return writers
}

// Metrics are the membership's metrics.
type Metrics struct {
	owned       prometheus.Gauge
	withdrawals prometheus.Counter
}

// NewMetrics registers the membership's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_worker_partitions_owned", Help: "Partitions this worker reads now (the unpartitioned consumer, while it exists, counts as one).",
		}),
		withdrawals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_worker_withdrawals_total", Help: "Times this worker left the partition assignment because it could not write to S3 while another worker could.",
		}),
	}
	reg.MustRegister(m.owned, m.withdrawals)
	return m
}

// noteWithdrawal logs and counts this worker leaving the assignment for
// want of S3 writes, and rejoining it. m.mu is held.
func (m *Member) noteWithdrawal(writers []string) {
	in := slices.Contains(writers, m.cfg.ID)
	reason := error(nil)
	if m.cfg.Writable != nil {
		reason = m.cfg.Writable.Writable()
	}
	switch {
	case !in && !m.withdrawn:
		m.withdrawn, m.said = true, false
		if errors.Is(reason, pipeline.ErrNotChecked) {
			return // starting: it joins once its first check passes
		}
		m.said = true
		if m.cfg.Metrics != nil {
			m.cfg.Metrics.withdrawals.Inc()
		}
		m.cfg.Log.Warn("leaving the partition assignment: this worker cannot write to S3; the others take its partitions until a write check passes",
			"owned", len(m.owned), "writers", len(writers), "err", reason)
	case in && m.withdrawn:
		m.withdrawn = false
		if m.said {
			m.cfg.Log.Info("rejoining the partition assignment: S3 takes this worker's writes again", "writers", len(writers))
		}
	}
	unassigned := in && reason != nil && !errors.Is(reason, pipeline.ErrNotChecked)
	if unassigned && !m.unassigned {
		m.cfg.Log.Warn("no worker can write to S3: keeping the partitions, fetching nothing until a write check passes",
			"members", len(m.members), "err", reason)
	}
	m.unassigned = unassigned
}
