package stream_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// The server stores each tenant's messages in one partition, the same for
// every message of the tenant, and each partition's consumer sees exactly
// its own.
func TestPartitionTransform(t *testing.T) {
	_, js := devtest.JetStream(t, devtest.NATS(t))
	cfg := stream.Config{Partitions: 4}
	if err := stream.EnsureStreams(t.Context(), js, cfg); err != nil {
		t.Fatal(err)
	}
	cons, err := stream.EnsureConsumers(t.Context(), js, "", 4, stream.ConsumerConfig{AckWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(cons) != 4 {
		t.Fatalf("%d consumers, want 4 (no unpartitioned one in a new deployment)", len(cons))
	}
	tenants := map[string]int{}
	for i := range 40 {
		tenant := fmt.Sprintf("t%d", i%10)
		raw := publishStored(t, js, tenant)
		p, ok := stream.PartitionOf(raw.Subject)
		if got, _ := stream.TenantOf(raw.Subject); !ok || got != tenant || p >= 4 {
			t.Fatalf("stored subject %s: partition %d (%v), tenant %q", raw.Subject, p, ok, got)
		}
		if prev, seen := tenants[tenant]; seen && prev != p {
			t.Fatalf("tenant %s in partitions %d and %d", tenant, prev, p)
		}
		tenants[tenant] = p
	}
	used := map[int]bool{}
	for _, p := range tenants {
		used[p] = true
	}
	if len(used) < 2 {
		t.Errorf("10 tenants all in one partition: %v", tenants)
	}
	total := 0
	for p, c := range cons {
		info, err := c.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.Name != fmt.Sprintf("sluice-workers-p%02d", p) || info.Config.FilterSubject != fmt.Sprintf("sluice.events.%d.*", p) ||
			info.Config.PriorityPolicy != jetstream.PriorityPolicyPinned || info.Config.PinnedTTL != 5*time.Second {
			t.Errorf("partition consumer %+v", info.Config)
		}
		total += int(info.NumPending)
	}
	if total != 40 {
		t.Errorf("partition consumers have %d pending, want 40", total)
	}
}

// A deployment from before partitions upgrades in place: the stream keeps
// its messages, the shared consumer keeps them pending (it narrows its
// filter to their subjects), new messages go to the partitions, every
// acked message leaves the stream, and the shared consumer is deleted once
// nothing is left for it.
func TestPartitionUpgradeInPlace(t *testing.T) {
	_, js := devtest.JetStream(t, devtest.NATS(t))
	old := stream.Config{}.EventsConfig()
	old.Subjects, old.SubjectTransform = []string{"sluice.events.>"}, nil
	if _, err := js.CreateStream(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(t.Context(), stream.EventsStream, jetstream.ConsumerConfig{
		Durable: stream.Consumer, AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: -1,
	}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := js.Publish(t.Context(), stream.EventsSubject("acme"), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	cons, err := stream.EnsureConsumers(t.Context(), js, "", stream.DefaultPartitions, stream.ConsumerConfig{AckWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), stream.EventsSubject("acme"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	legacy, err := cons[len(cons)-1].Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if legacy.Name != stream.Consumer || legacy.Config.FilterSubject != "sluice.events.acme" || legacy.NumPending != 3 {
		t.Errorf("old consumer after the upgrade: filter %q, %d pending; want sluice.events.acme, 3", legacy.Config.FilterSubject, legacy.NumPending)
	}
	partitioned := 0
	for _, c := range cons[:len(cons)-1] {
		info, err := c.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		partitioned += int(info.NumPending)
	}
	if partitioned != 1 {
		t.Errorf("%d new messages in the partitions, want 1", partitioned)
	}

	// Acked by their consumers, old and new messages leave the stream;
	// the next worker to start deletes the unpartitioned consumer.
	ackAll := func(c jetstream.Consumer, want int) {
		t.Helper()
		mb, err := c.Fetch(want, jetstream.FetchMaxWait(2*time.Second), jetstream.FetchPriorityGroup(stream.PriorityGroup))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range mb.Messages() {
			if err := m.DoubleAck(t.Context()); err != nil {
				t.Fatal(err)
			}
			got++
		}
		if got != want {
			t.Fatalf("%s: %d messages acked, want %d (%v)", c.CachedInfo().Name, got, want, mb.Error())
		}
	}
	for _, c := range cons[:len(cons)-1] {
		if info, _ := c.Info(t.Context()); info != nil && info.NumPending > 0 {
			ackAll(c, int(info.NumPending))
		}
	}
	st, err := js.Stream(t.Context(), stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	stored := func() uint64 {
		info, err := st.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	if n := stored(); n != 3 {
		t.Errorf("%d messages stored once the partitioned one is acked, want the 3 old ones", n)
	}
	ackAll(cons[len(cons)-1], 3)
	if n := stored(); n != 0 {
		t.Errorf("%d messages stored once all are acked", n)
	}
	// A worker still reading it when it is deleted (a fetch under way,
	// then a new one) reads nothing more, without an error.
	shared := cons[len(cons)-1]
	pending, err := shared.Fetch(1, jetstream.FetchMaxWait(3*time.Second), jetstream.FetchPriorityGroup(stream.PriorityGroup))
	if err != nil {
		t.Fatal(err)
	}
	again, err := stream.EnsureConsumers(t.Context(), js, "", stream.DefaultPartitions, stream.ConsumerConfig{AckWait: 5 * time.Second})
	if err != nil || len(again) != stream.DefaultPartitions {
		t.Errorf("consumers ensured once the old messages are stored: %d (%v), want the %d partitions'", len(again), err, stream.DefaultPartitions)
	}
	if _, err := st.Consumer(t.Context(), stream.Consumer); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("the unpartitioned consumer once nothing is left for it: %v", err)
	}
	for range pending.Messages() {
		t.Error("a message from the deleted consumer")
	}
	if err := pending.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
		t.Errorf("fetch under way when the unpartitioned consumer was deleted: %v", err)
	}
	if mb, err := shared.Fetch(1, jetstream.FetchMaxWait(time.Second), jetstream.FetchPriorityGroup(stream.PriorityGroup)); !errors.Is(err, jetstream.ErrNoMessages) {
		if err == nil {
			for range mb.Messages() {
			}
			err = mb.Error()
		}
		if err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			t.Errorf("fetch from the deleted unpartitioned consumer: %v", err)
		}
	}
}

// Partition consumers left by a larger partition count are still read.
func TestPartitionsShrunk(t *testing.T) {
	_, js := devtest.JetStream(t, devtest.NATS(t))
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.EnsureConsumers(t.Context(), js, "", 4, stream.ConsumerConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	cons, err := stream.EnsureConsumers(t.Context(), js, "", 2, stream.ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cons {
		names = append(names, c.CachedInfo().Name)
	}
	if want := []string{"sluice-workers-p00", "sluice-workers-p01", "sluice-workers-p02", "sluice-workers-p03"}; !slices.Equal(names, want) {
		t.Errorf("consumers %v, want %v", names, want)
	}
}

// A message acked by its partition's consumer leaves the work-queue
// stream. The server counts a consumer filtered on the stream's own
// subject as unfiltered, so with one beside them (the unpartitioned
// consumer, before) a partition's acked messages stayed stored, delivered
// to no one.
func TestPartitionAckRemoves(t *testing.T) {
	_, js := devtest.JetStream(t, devtest.NATS(t))
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	cons, err := stream.EnsureConsumers(t.Context(), js, "", 4, stream.ConsumerConfig{AckWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const msgs = 50
	var part int
	for range msgs {
		part, _ = stream.PartitionOf(publishStored(t, js, "bench").Subject)
	}
	c := partitionConsumer(t, cons, part)
	acked := 0
	for acked < msgs {
		mb, err := c.Fetch(msgs, jetstream.FetchMaxWait(2*time.Second), jetstream.FetchPriorityGroup(stream.PriorityGroup))
		if err != nil {
			t.Fatal(err)
		}
		for m := range mb.Messages() {
			if err := m.DoubleAck(t.Context()); err != nil {
				t.Fatal(err)
			}
			acked++
		}
		if err := mb.Error(); err != nil {
			t.Fatal(err)
		}
	}
	st, err := js.Stream(t.Context(), stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("%d of %d messages acked by their partition's consumer are still stored", info.State.Msgs, msgs)
	}
}

// partitionConsumer is partition p's consumer among cons.
func partitionConsumer(t *testing.T, cons []jetstream.Consumer, p int) jetstream.Consumer {
	t.Helper()
	for _, c := range cons {
		if c.CachedInfo().Name == stream.PartitionConsumer("", p) {
			return c
		}
	}
	t.Fatalf("no consumer of partition %d", p)
	return nil
}

// publishStored publishes a message of tenant and returns it as stored.
func publishStored(t *testing.T, js jetstream.JetStream, tenant string) *jetstream.RawStreamMsg {
	t.Helper()
	ack, err := js.Publish(t.Context(), stream.EventsSubject(tenant), []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.GetMsg(t.Context(), ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
