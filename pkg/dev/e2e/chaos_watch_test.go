package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/stream"
)

// consumerWatch samples every consumer of the events stream and keeps, for
// each, the longest time it had deliverable messages (pending or ack
// pending) while its ack floor did not move.
type consumerWatch struct {
	js jetstream.JetStream

	mu      sync.Mutex
	stuck   map[string]stall // current run without progress
	longest map[string]stall // longest such run
	samples int
	misses  int // samples that could not be read (a NATS node down)
}

// stall is a run of samples with deliverable messages and one ack floor.
type stall struct {
	floor       uint64
	since, last time.Time
}

func (s stall) length() time.Duration { return s.last.Sub(s.since) }

func newConsumerWatch(js jetstream.JetStream) *consumerWatch {
	return &consumerWatch{js: js, stuck: map[string]stall{}, longest: map[string]stall{}}
}

// run samples every interval until ctx ends.
func (w *consumerWatch) run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		infos, err := consumerInfos(ctx, w.js)
		w.record(time.Now(), infos, err)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (w *consumerWatch) record(now time.Time, infos []*jetstream.ConsumerInfo, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.misses++
		return
	}
	w.samples++
	for _, ci := range infos {
		deliverable := ci.NumPending > 0 || ci.NumAckPending > 0
		s, ok := w.stuck[ci.Name]
		switch {
		case !deliverable:
			delete(w.stuck, ci.Name)
			continue
		case !ok || s.floor != ci.AckFloor.Stream:
			s = stall{floor: ci.AckFloor.Stream, since: now}
		}
		s.last = now
		w.stuck[ci.Name] = s
		if s.length() > w.longest[ci.Name].length() {
			w.longest[ci.Name] = s
		}
	}
}

// longestStall is the longest run without progress of any consumer.
func (w *consumerWatch) longestStall() (string, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	name, d := "", time.Duration(0)
	for n, s := range w.longest {
		if s.length() > d {
			name, d = n, s.length()
		}
	}
	return name, d
}

// summary is one line per consumer that ever had deliverable messages
// without progress, the longest first.
func (w *consumerWatch) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	names := make([]string, 0, len(w.longest))
	for n := range w.longest {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return int(w.longest[b].length() - w.longest[a].length()) })
	var b strings.Builder
	fmt.Fprintf(&b, "%d samples of every consumer (%d unreadable); longest time with deliverable messages and no ack floor progress:\n", w.samples, w.misses)
	for _, n := range names {
		s := w.longest[n]
		fmt.Fprintf(&b, "  %-22s %8s  (ack floor %d, from %s to %s)\n", n, s.length().Round(100*time.Millisecond),
			s.floor, s.since.UTC().Format("15:04:05.0"), s.last.UTC().Format("15:04:05.0"))
	}
	return b.String()
}

// consumerInfos reads every consumer of the events stream, sorted by name.
func consumerInfos(ctx context.Context, js jetstream.JetStream) ([]*jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream.EventsStream)
	if err != nil {
		return nil, fmt.Errorf("events stream: %w", err)
	}
	l := st.ListConsumers(ctx)
	var out []*jetstream.ConsumerInfo
	for ci := range l.Info() {
		out = append(out, ci)
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("list consumers: %w", err)
	}
	slices.SortFunc(out, func(a, b *jetstream.ConsumerInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// consumerReport is the state of every consumer of the events stream, the
// way `nats consumer report` shows it, and of the stream.
func consumerReport(ctx context.Context, js jetstream.JetStream) string {
	var b strings.Builder
	for _, name := range []string{stream.EventsStream, stream.DLQStream} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			fmt.Fprintf(&b, "stream %s: %v\n", name, err)
			continue
		}
		info := st.CachedInfo()
		leader := ""
		if info.Cluster != nil {
			leader = info.Cluster.Leader
		}
		fmt.Fprintf(&b, "stream %s: %d messages, sequences %d..%d, leader %s\n", name, info.State.Msgs,
			info.State.FirstSeq, info.State.LastSeq, leader)
	}
	infos, err := consumerInfos(ctx, js)
	if err != nil {
		fmt.Fprintf(&b, "consumer report: %v\n", err)
		return b.String()
	}
	fmt.Fprintf(&b, "%-22s %9s %11s %11s %10s %10s %8s %-8s %s\n",
		"consumer", "pending", "ack pending", "redelivered", "ack floor", "delivered", "waiting", "leader", "pinned client")
	for _, ci := range infos {
		var pinned []string
		for _, g := range ci.PriorityGroups {
			if g.PinnedClientID != "" {
				pinned = append(pinned, fmt.Sprintf("%s:%s since %s", g.Group, g.PinnedClientID, g.PinnedTS.UTC().Format("15:04:05.0")))
			}
		}
		leader := ""
		if ci.Cluster != nil {
			leader = ci.Cluster.Leader
		}
		fmt.Fprintf(&b, "%-22s %9d %11d %11d %10d %10d %8d %-8s %s\n", ci.Name, ci.NumPending, ci.NumAckPending, ci.NumRedelivered,
			ci.AckFloor.Stream, ci.Delivered.Stream, ci.NumWaiting, leader, strings.Join(pinned, ", "))
	}
	return b.String()
}
