package partition

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/pipeline"
)

// reader records what a Member tells the pipeline to read.
type reader struct {
	mu      sync.Mutex
	reading map[string]bool
	// stuck makes every handover wait forever, as with messages that
	// cannot be stored.
	stuck bool
}

func (r *reader) Acquire(name string, _ pipeline.Fetcher, _ ...jetstream.FetchOpt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reading[name] = true
}

func (r *reader) Release(name string) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.reading, name)
	done := make(chan struct{})
	if !r.stuck {
		close(done)
	}
	return done
}

func (r *reader) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n []string
	for k := range r.reading {
		n = append(n, k)
	}
	slices.Sort(n)
	return n
}

// writability is what the pipeline tells a Member of its writes.
type writability struct {
	mu      sync.Mutex
	err     error
	changed chan struct{}
}

func newWritability(err error) *writability {
	return &writability{err: err, changed: make(chan struct{}, 1)}
}

func (w *writability) Writable() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *writability) WritableChanged() <-chan struct{} { return w.changed }

func (w *writability) set(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

type joined struct {
	m      *Member
	rd     *reader
	w      *writability
	cancel context.CancelFunc
	done   chan struct{}
}

func join(t *testing.T, js jetstream.JetStream, slots []jetstream.Consumer, id string) *joined {
	t.Helper()
	return joinAs(t, js, slots, id, newWritability(nil))
}

func joinAs(t *testing.T, js jetstream.JetStream, slots []jetstream.Consumer, id string, w *writability) *joined {
	t.Helper()
	rd := &reader{reading: map[string]bool{}}
	m, err := Join(t.Context(), Config{JS: js, Stream: stream.EventsStream, Slots: slots, ID: id, TTL: 3 * time.Second,
		Writable: w, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, rd)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	j := &joined{m: m, rd: rd, w: w, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(j.done); _ = m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-j.done })
	return j
}

// Workers share the partitions out by themselves: one reads all; a second
// joining takes half, disjoint from the first's; when it leaves, the first
// reads all again at once; a third that dies (no Leave) loses its share
// when its key expires.
func TestMembersShareThePartitions(t *testing.T) {
	_, js := devtest.JetStream(t, devtest.NATS(t))
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	cons, err := stream.EnsureConsumers(t.Context(), js, "", 3, stream.ConsumerConfig{AckWait: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	slots := cons
	all := []string{"sluice-workers-p00", "sluice-workers-p01", "sluice-workers-p02"}
	reads := func(j *joined, want []string) func() bool {
		return func() bool { return slices.Equal(j.rd.names(), want) && slices.Equal(j.m.Owned(), want) }
	}

	a := join(t, js, slots, "a")
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, reads(a, all), "one member does not read every partition")
	b := join(t, js, slots, "b")
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, reads(a, []string{"sluice-workers-p00", "sluice-workers-p02"}),
		"the first member did not hand over half")
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, reads(b, []string{"sluice-workers-p01"}),
		"the second member did not take the other half")

	b.cancel()
	<-b.done
	b.m.Leave(t.Context())
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, reads(a, all), "the leaving member's partitions did not come back")

	c := join(t, js, slots, "c")
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, reads(c, []string{"sluice-workers-p01"}),
		"the third member did not take its half")
	c.cancel() // dies: no Leave, its key expires
	<-c.done
	devtest.Eventually(t, 15*time.Second, 20*time.Millisecond, reads(a, all), "a dead member's partitions did not come back")
}

// TestPartitionTakenBackDuringItsHandover: a partition assigned back to
// a member while its handover cannot complete is read again at once; its
// new owner has just left, and waiting would leave it unread.
func TestPartitionTakenBackDuringItsHandover(t *testing.T) {
	_, js := devtest.JetStream(t, devtest.NATS(t))
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	slots, err := stream.EnsureConsumers(t.Context(), js, "", 2, stream.ConsumerConfig{AckWait: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"sluice-workers-p00", "sluice-workers-p01"}
	a := join(t, js, slots, "a")
	a.rd.mu.Lock()
	a.rd.stuck = true
	a.rd.mu.Unlock()
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return slices.Equal(a.rd.names(), all) },
		"one member does not read every partition")
	b := join(t, js, slots, "b")
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return slices.Equal(a.rd.names(), all[:1]) },
		"the first member did not hand a partition over")
	b.cancel()
	<-b.done
	b.m.Leave(t.Context())
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool {
		return slices.Equal(a.rd.names(), all) && slices.Equal(a.m.Owned(), all)
	}, "the partition whose handover is under way was not read again")
}

// TestMembershipOutlivesANATSNode: the members bucket has the stream's
// replicas, so with the node that leads it killed, heartbeats go on once
// the other two elect a leader (a bucket of one replica would be gone
// until that node is back).
func TestMembershipOutlivesANATSNode(t *testing.T) {
	cl := devtest.NATSCluster(t, 3)
	nc, err := nats.Connect(cl.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := Join(t.Context(), Config{JS: js, ID: "w1", TTL: 10 * time.Second, Replicas: 3, Log: log}, &reader{reading: map[string]bool{}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), "KV_"+stream.MembersBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil {
		t.Fatalf("members bucket has %d replicas, want 3", info.Config.Replicas)
	}
	for _, node := range cl.Nodes() {
		if node.Name == info.Cluster.Leader {
			node.Kill()
		}
	}
	devtest.Eventually(t, 30*time.Second, 200*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		return m.heartbeat(ctx) == nil
	}, "no heartbeat went through after the bucket's leader was killed")
}

// A member that cannot write leaves the assignment and rejoins once it
// can: a new member not checked yet takes nothing from one that can
// write; one refused by S3 hands its partitions over, and says so in its
// key; when every member is refused, each keeps its share; the first that
// can write again takes every partition.
func TestUnwritableMemberWithdraws(t *testing.T) {
	_, js := devtest.JetStream(t, devtest.NATS(t))
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	slots, err := stream.EnsureConsumers(t.Context(), js, "", 3, stream.ConsumerConfig{AckWait: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"sluice-workers-p00", "sluice-workers-p01", "sluice-workers-p02"}
	reads := func(j *joined, want []string) func() bool {
		return func() bool { return slices.Equal(j.rd.names(), want) && slices.Equal(j.m.Owned(), want) }
	}
	a := join(t, js, slots, "a")
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, reads(a, all), "one member does not read every partition")
	kv, err := js.KeyValue(t.Context(), stream.MembersBucket)
	if err != nil {
		t.Fatal(err)
	}
	value := func(id string) string {
		e, err := kv.Get(t.Context(), id)
		if err != nil {
			return err.Error()
		}
		return string(e.Value())
	}
	refused := errors.New("SignatureDoesNotMatch")
	b := joinAs(t, js, slots, "b", newWritability(pipeline.ErrNotChecked))
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return strings.HasPrefix(value("b"), "unwritable ") },
		"a member not checked yet does not say it cannot write")
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool {
		b.m.mu.Lock()
		defer b.m.mu.Unlock()
		_, sa := b.m.members["a"]
		_, sb := b.m.members["b"]
		return sa && sb
	}, "the new member does not see both members")
	var wg sync.WaitGroup
	b.m.rebalance(t.Context(), &wg) // as its Run does on each change
	wg.Wait()
	if !reads(b, nil)() || !reads(a, all)() {
		t.Fatalf("a member not checked yet took partitions: it reads %v, the other %v", b.rd.names(), a.rd.names())
	}

	b.w.set(nil) // its first check passed
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, reads(b, []string{"sluice-workers-p01"}), "the checked member did not take its half")
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, reads(a, []string{"sluice-workers-p00", "sluice-workers-p02"}),
		"the first member did not hand over half")
	if !strings.HasPrefix(value("b"), "writable ") {
		t.Errorf("value of a member that can write: %q", value("b"))
	}

	b.w.set(refused)
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, reads(b, nil), "the refused member kept its partitions")
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, reads(a, all), "the refused member's partitions did not move")
	if v := value("b"); !strings.HasPrefix(v, "unwritable ") {
		t.Errorf("value of a refused member: %q", v)
	}

	a.w.set(refused) // no member can write: each keeps its share
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, reads(b, []string{"sluice-workers-p01"}),
		"with no member able to write, a member does not keep its share")
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, reads(a, []string{"sluice-workers-p00", "sluice-workers-p02"}),
		"with no member able to write, a member does not keep its share")

	b.w.set(nil) // the first to write again takes everything
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, reads(b, all), "the member that can write did not take every partition")
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, reads(a, nil), "the refused member kept partitions")

	a.w.set(nil)
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, reads(a, []string{"sluice-workers-p00", "sluice-workers-p02"}),
		"the member writable again did not rejoin")
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, reads(b, []string{"sluice-workers-p01"}), "the other did not hand over")
}

// Writers: the members that can write, or all when none can.
func TestWriters(t *testing.T) {
	for _, c := range []struct {
		members map[string]bool
		want    []string
	}{
		{map[string]bool{}, nil},
		{map[string]bool{"a": true, "b": false, "c": true}, []string{"a", "c"}},
		{map[string]bool{"a": false, "b": false}, []string{"a", "b"}},
	} {
		got := Writers(c.members)
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("Writers(%v) = %v, want %v", c.members, got, c.want)
		}
	}
	for v, want := range map[string]bool{"writable 2026-01-01T00:00:00Z": true, "unwritable 2026-01-01T00:00:00Z": false,
		"2026-01-01T00:00:00Z": true, "": true} {
		if got := canWrite([]byte(v)); got != want {
			t.Errorf("canWrite(%q) = %v", v, got)
		}
	}
}
