package manifest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// TestManifestWaitsForEverySource: a tenant's hour is stored partly
// before partitions existed (read by the unpartitioned consumer) and
// partly in its partition. While only the partition's consumer has been
// read, the hour is not closed, whatever the clock; once the
// unpartitioned consumer's messages are stored too, the first manifest
// lists every event of both.
func TestManifestWaitsForEverySource(t *testing.T) {
	n, s3srv := devtest.NATS(t), devtest.S3(t)
	nc, js := devtest.JetStream(t, n)
	old := stream.Config{}.EventsConfig()
	old.Subjects, old.SubjectTransform = []string{"sluice.events.>"}, nil
	if _, err := js.CreateStream(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	hour := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for i := range 3 {
		publishAt(t, js, "acme", hour.Add(10*time.Minute+time.Duration(i)*time.Second), i)
	}
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	slots, err := stream.EnsureConsumers(t.Context(), js, "", 1, stream.ConsumerConfig{AckWait: memberTTL})
	if err != nil {
		t.Fatal(err)
	}
	if len(slots) != 2 || slots[1].CachedInfo().Name != stream.Consumer {
		t.Fatalf("consumers %d, want the partition's and the unpartitioned one", len(slots))
	}
	for i := range 3 {
		publishAt(t, js, "acme", hour.Add(20*time.Minute+time.Duration(i)*time.Second), 10+i)
	}

	const grace = 5 * time.Minute
	clk := &clock{now: hour.Add(30 * time.Minute)}
	p, tr := newPipeline(t, nc, js, s3srv, grace, clk.Now)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	part, legacy := slots[0], slots[1]
	p.Acquire(part.CachedInfo().Name, part, jetstream.FetchPriorityGroup(stream.PriorityGroup))
	devtest.Eventually(t, 20*time.Second, 20*time.Millisecond, func() bool {
		info, err := part.Info(t.Context())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Consumer == 3
	}, "the partition's messages not stored and acked")

	clk.set(hour.Add(time.Hour + grace + time.Minute))
	tr.CloseHours(t.Context())
	if m := readManifests(t, s3srv.Client()); len(m) != 0 {
		t.Fatalf("manifest written while the unpartitioned consumer holds messages of the hour: %v", keys(m))
	}

	p.Acquire(legacy.CachedInfo().Name, legacy, jetstream.FetchPriorityGroup(stream.PriorityGroup))
	streamEmpty(t, js)
	tr.CloseHours(t.Context())
	m := onlyFirst(t, s3srv.Client(), "acme", hour)
	checkManifest(t, s3srv.Client(), m, 12)
	if left := openKeys(t, js); left != 0 {
		t.Errorf("%d keys left in %s after the manifest", left, stream.HoursBucket)
	}
}

// TestManifestWaitsForBothPartitionCounts: SLUICE_PARTITIONS changes
// within a tenant's hour, so the hour's messages are in two partitions,
// read by two workers. The worker of the new partition stores its part
// and does not close the hour while the old partition holds messages of
// it; once the other worker has stored those, the first manifest lists
// every event, and both workers' keys of the hour are removed.
func TestManifestWaitsForBothPartitionCounts(t *testing.T) {
	n, s3srv := devtest.NATS(t), devtest.S3(t)
	nc, js := devtest.JetStream(t, n)
	partitions := func(count int) {
		t.Helper()
		if err := stream.EnsureStreams(t.Context(), js, stream.Config{Partitions: count}); err != nil {
			t.Fatal(err)
		}
	}
	partitions(2)
	st := eventsStream(t, js)
	// publish stores a message and returns its partition.
	publish := func(tenant string, at time.Time, i int) int {
		t.Helper()
		stored, err := st.GetMsg(t.Context(), publishAt(t, js, tenant, at, i))
		if err != nil {
			t.Fatal(err)
		}
		p, ok := stream.PartitionOf(stored.Subject)
		if !ok {
			t.Fatalf("stored as %s, without a partition", stored.Subject)
		}
		return p
	}
	// A tenant that the two counts put in different partitions.
	hour := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	tenant, before, after := "", 0, 0
	for i := 0; tenant == "" && i < 32; i++ {
		candidate := "t" + fmt.Sprint(i)
		partitions(2)
		b := publish(candidate, hour, 0)
		partitions(3)
		if a := publish(candidate, hour, 0); a != b {
			tenant, before, after = candidate, b, a
		}
	}
	if tenant == "" {
		t.Fatal("no tenant changes partition between 2 and 3 partitions")
	}
	if err := st.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	partitions(2)
	for i := range 3 {
		publish(tenant, hour.Add(10*time.Minute+time.Duration(i)*time.Second), i)
	}
	partitions(3)
	for i := range 3 {
		publish(tenant, hour.Add(20*time.Minute+time.Duration(i)*time.Second), 10+i)
	}
	slots, err := stream.EnsureConsumers(t.Context(), js, "", 3, stream.ConsumerConfig{AckWait: memberTTL})
	if err != nil {
		t.Fatal(err)
	}

	const grace = 5 * time.Minute
	clk := &clock{now: hour.Add(30 * time.Minute)}
	start := func(slot int) *Tracker {
		p, tr := newPipeline(t, nc, js, s3srv, grace, clk.Now)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		p.Acquire(slots[slot].CachedInfo().Name, slots[slot], jetstream.FetchPriorityGroup(stream.PriorityGroup))
		return tr
	}
	consumed := func(slot int) {
		t.Helper()
		devtest.Eventually(t, 20*time.Second, 20*time.Millisecond, func() bool {
			info, err := slots[slot].Info(t.Context())
			return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Consumer == 3
		}, fmt.Sprintf("partition %d's messages not stored and acked", slot))
	}
	newer := start(after)
	consumed(after)
	clk.set(hour.Add(time.Hour + grace + time.Minute))
	newer.CloseHours(t.Context())
	if m := readManifests(t, s3srv.Client()); len(m) != 0 {
		t.Fatalf("manifest written while the former partition holds messages of the hour: %v", keys(m))
	}

	older := start(before)
	consumed(before)
	streamEmpty(t, js)
	older.CloseHours(t.Context())
	newer.CloseHours(t.Context())
	checkManifest(t, s3srv.Client(), onlyFirst(t, s3srv.Client(), tenant, hour), 12)
	if left := openKeys(t, js); left != 0 {
		t.Errorf("%d keys left in %s after the manifest", left, stream.HoursBucket)
	}
}
