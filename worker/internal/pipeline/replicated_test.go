package pipeline

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// TestReplicatedPartitionDelivers: a partition consumer with three
// replicas, fetched in fetches that each fill their message count before
// their byte room (the busy case, and every idle one-message fetch). Its
// server answers such a fetch with "409 Batch Completed" ahead of the last
// replicated deliveries; fetched with a byte limit, those messages would
// reach a closed inbox, again at every redelivery, and never land.
func TestReplicatedPartitionDelivers(t *testing.T) {
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
	h := &harness{t: t, nc: nc, js: js, s3srv: devtest.S3(t), prefix: "raw"}
	h.s3 = &faultyS3{Client: h.s3srv.Client()}
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{Replicas: 3, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	cons, err := stream.EnsureConsumers(t.Context(), js, stream.EventsStream, 1, stream.ConsumerConfig{AckWait: 5 * time.Second, MaxAckPending: 10000})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config(object.Limits{MaxBytes: 1 << 30, MaxEvents: 1 << 20, MaxAge: 200 * time.Millisecond})
	cfg.Consumer, cfg.Stream = nil, stream.EventsStream
	cfg.FetchMessages = 4
	r := h.start(cfg)
	r.p.Acquire(cons[0].CachedInfo().Name, cons[0], jetstream.FetchPriorityGroup(stream.PriorityGroup))
	const msgs = 40
	for i := range msgs {
		h.publish("acme", time.Now(), i, 1, 10)
	}
	objs := h.waitEvents(msgs, 30*time.Second)
	if ids := checkObjects(t, objs); len(ids) != msgs {
		t.Errorf("%d events stored, want %d", len(ids), msgs)
	}
	if n := h.streamMsgs(); n != 0 {
		t.Errorf("%d messages left in the stream", n)
	}
}
