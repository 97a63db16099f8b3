package partition

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-ingest/sluice/worker/internal/pipeline"
)

// Members that cannot write.
//
// A worker that cannot write to S3 hands its messages back and fetches
// nothing until a write check passes. Were it still assigned partitions,
// their messages would wait for it. So each member's value in the bucket
// says whether it can write ("writable <time>" or "unwritable <time>", the
// time of the heartbeat), the member puts its key again as soon as that
// changes, and partitions are shared out over the members that can write
// (Writers). A worker that cannot write thus leaves the assignment: it
// hands its partitions over (having handed their messages back) and the
// others take them; it rejoins once a write check passes. A worker not
// checked yet counts as unable to write, so a worker started with bad
// credentials never takes a partition from one that can write.
//
// If no member can write (the credentials are wrong on every worker),
// every member counts, as before: each keeps its partitions and fetches
// nothing while it cannot write, so the messages wait in the stream, and
// the first worker whose check passes takes every partition. Nothing is
// delivered meanwhile, so nothing nears SLUICE_MAX_DELIVER.
//
// A value that is neither (a worker of an earlier version, which puts the
// time alone) counts as writable. Such a worker shares out partitions over
// every key, so while both versions run, the partitions it assigns to a
// member that cannot write wait for that member, as they did before.

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
