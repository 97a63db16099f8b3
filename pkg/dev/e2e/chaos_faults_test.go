package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// victim is one process the fault schedule kills and restarts.
type victim struct {
	kind, name string
	kill       func()
	// restart starts it again on the same ports and files and returns once
	// it is ready (or why it is not, within the bound).
	restart func(ctx context.Context) error
}

// kill is one fault of the schedule.
type kill struct {
	at       time.Duration // since the faults began
	victim   *victim
	down     time.Duration // planned: killed to restarted
	ready    time.Duration // restarted to ready
	retries  int           // restarts after the first, when it exited before it was ready
	err      error         // not ready
	finished time.Time
}

// faultSchedule kills one process every 2–4 s and restarts it 1–2 s later,
// for the given length. Kinds take turns, in an order shuffled each round by
// the seeded RNG, which also picks the process of the kind and the times:
// a seed replays the same kills in the same order. One process is down at a
// time; the next kill waits until the last one is ready again (a NATS node
// until /healthz says it rejoined), so a restart slower than the gap
// delays the schedule instead of stacking faults.
type faultSchedule struct {
	rng     *rand.Rand
	victims map[string][]*victim // by kind
	kinds   []string
	kills   []kill
}

func newFaultSchedule(seed int64, victims []*victim) *faultSchedule {
	s := &faultSchedule{rng: rand.New(rand.NewPCG(uint64(seed), uint64(seed)>>1^0x5eed)), victims: map[string][]*victim{}}
	for _, v := range victims {
		if _, ok := s.victims[v.kind]; !ok {
			s.kinds = append(s.kinds, v.kind)
		}
		s.victims[v.kind] = append(s.victims[v.kind], v)
	}
	return s
}

// between is a duration in [lo, hi) drawn from the RNG.
func (s *faultSchedule) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)))
}

// run kills and restarts processes until length has passed or ctx ends;
// it returns when the last one restarted is ready. logf reports each kill
// as it happens.
func (s *faultSchedule) run(ctx context.Context, length time.Duration, logf func(string, ...any)) {
	begin := time.Now()
	var round []string
	for time.Since(begin) < length && ctx.Err() == nil {
		if len(round) == 0 {
			round = slices.Clone(s.kinds)
			s.rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		}
		kind := round[0]
		round = round[1:]
		of := s.victims[kind]
		v := of[s.rng.IntN(len(of))]
		gap, down := s.between(2*time.Second, 4*time.Second), s.between(time.Second, 2*time.Second)

		k := kill{at: time.Since(begin), victim: v, down: down}
		killed := time.Now()
		v.kill()
		wait(ctx, down)
		restarted := time.Now()
		rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		for {
			// A process that exits at start (a port taken meanwhile by
			// another program) is started again, as a supervisor would.
			if k.err = v.restart(rctx); k.err == nil || rctx.Err() != nil {
				break
			}
			k.retries++
			wait(rctx, 200*time.Millisecond)
		}
		cancel()
		k.finished = time.Now()
		k.ready = k.finished.Sub(restarted)
		s.kills = append(s.kills, k)
		logf("fault %2d at %5.1fs: %-9s killed, restarted after %.1fs, ready %.1fs later%s%s",
			len(s.kills), k.at.Seconds(), v.name, down.Seconds(), k.ready.Seconds(), retried(k.retries), errSuffix(k.err))
		wait(ctx, time.Until(killed.Add(gap)))
	}
}

func retried(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (started %d more times: it exited before it was ready)", n)
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": NOT READY: " + err.Error()
}

// wait waits d or until ctx ends: the schedule's own pace.
func wait(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// lastReady is when the last restarted process was ready.
func (s *faultSchedule) lastReady() time.Time {
	if len(s.kills) == 0 {
		return time.Time{}
	}
	return s.kills[len(s.kills)-1].finished
}

// perKind counts the kills by kind, e.g. "gateway 4, nats 4, ...".
func (s *faultSchedule) perKind() string {
	n := map[string]int{}
	for _, k := range s.kills {
		n[k.victim.kind]++
	}
	var parts []string
	for _, kind := range slices.Sorted(slices.Values(s.kinds)) {
		parts = append(parts, fmt.Sprintf("%s %d", kind, n[kind]))
	}
	return fmt.Sprintf("%d kills: %s", len(s.kills), strings.Join(parts, ", "))
}

// notReady fails the test for every process that did not come back.
func (s *faultSchedule) notReady(t *testing.T) {
	t.Helper()
	for i, k := range s.kills {
		if k.err != nil {
			t.Errorf("fault %d: %s not ready after its restart: %v", i+1, k.victim.name, k.err)
		}
	}
}
