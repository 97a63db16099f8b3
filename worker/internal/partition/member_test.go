package partition

import (
	"context"
	"io"
	"log/slog"
	"slices"
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

type joined struct {
	m      *Member
	rd     *reader
	cancel context.CancelFunc
	done   chan struct{}
}

func join(t *testing.T, js jetstream.JetStream, slots []jetstream.Consumer, id string) *joined {
	t.Helper()
	rd := &reader{reading: map[string]bool{}}
	m, err := Join(t.Context(), Config{JS: js, Stream: stream.EventsStream, Slots: slots, ID: id, TTL: 3 * time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, rd)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	j := &joined{m: m, rd: rd, cancel: cancel, done: make(chan struct{})}
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
