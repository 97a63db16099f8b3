package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-ingest/sluice/pkg/admin"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

func TestStatus(t *testing.T) {
	c := newCluster(t)
	for range 3 {
		r := newRequest("acme", 2)
		m := nats.NewMsg(stream.EventsSubject("acme"))
		r.meta.SetHeaders(m.Header)
		m.Data = r.body
		if _, err := c.js.PublishMsg(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	c.deadLetter(t, newRequest("acme", 1), "S3 refused the object: EntityTooLarge", 1)
	c.deadLetter(t, newRequest("beta", 1), "S3 refused the object: EntityTooLarge", 1)
	c.deadLetter(t, newRequest("beta", 1), "S3 refused the object: EntityTooLarge", 1)

	status := func() admin.Status {
		var s admin.Status
		out := c.mustSluice(t, "status", "--json")
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("status --json %q: %v", out, err)
		}
		return s
	}
	s := status()
	if s.Events.Name != stream.EventsStream || s.Events.Messages != 3 || s.Events.FirstSeq != 1 || s.Events.LastSeq != 3 ||
		s.Events.Limits.Retention != "workqueue" || s.Events.Limits.MaxBytes != -1 || time.Duration(s.Events.Limits.Duplicates) != stream.DefaultDuplicateWindow {
		t.Errorf("events %+v", s.Events)
	}
	if len(s.Consumers) != 1 || !s.Consumers[0].Workers || s.Consumers[0].Pending != 3 || s.Consumers[0].AckPending != 0 || s.Consumers[0].MaxDeliver != -1 {
		t.Errorf("consumers %+v", s.Consumers)
	}
	if s.DLQ.Messages != 3 || len(s.DLQTenants) != 2 || s.DLQTenants["acme"] != 1 || s.DLQTenants["beta"] != 2 {
		t.Errorf("dlq %+v, tenants %v", s.DLQ, s.DLQTenants)
	}
	out := c.mustSluice(t, "status")
	for _, want := range []string{
		"stream SLUICE_EVENTS (created ",
		"  messages         3 (",
		"  newest           seq 3 at ",
		"consumer sluice-workers (the workers')\n  lag              3 not yet delivered, 0 delivered and not acknowledged (max 1000), 0 of them redelivered\n",
		"  workers          NONE PULLING: messages wait and no worker asks for them\n",
		"stream SLUICE_DLQ (created ",
		"  by tenant        beta 2, acme 1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	// A worker takes the three messages and keeps pulling for more.
	cons, err := c.js.Consumer(t.Context(), stream.EventsStream, stream.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(3)
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() {
	}
	it, err := cons.Messages()
	if err != nil {
		t.Fatal(err)
	}
	pulling := make(chan struct{})
	go func() { defer close(pulling); _, _ = it.Next() }() // waits: nothing is left
	defer func() { it.Stop(); <-pulling }()
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return status().Consumers[0].Waiting > 0 }, "no waiting pull request")
	s = status()
	if s.Consumers[0].Pending != 0 || s.Consumers[0].AckPending != 3 || s.Consumers[0].LastDelivered == nil {
		t.Errorf("consumer after the pull %+v", s.Consumers[0])
	}
	out = c.mustSluice(t, "status")
	if !strings.Contains(out, "  workers          pulling: at least one worker is connected and asking for messages\n") ||
		!strings.Contains(out, "  lag              0 not yet delivered, 3 delivered and not acknowledged") {
		t.Errorf("status with a worker pulling:\n%s", out)
	}
}

func TestStatusWithoutConsumer(t *testing.T) {
	n := devtest.NATS(t)
	_, js := devtest.JetStream(t, n)
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{MaxBytes: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	c := cluster{n: n, js: js}
	out := c.mustSluice(t, "status")
	for _, want := range []string{
		"consumers sluice-workers-pNN: missing (no worker has started on SLUICE_EVENTS)\n",
		"  limits           max bytes 1.0 GiB, max messages unlimited, max age unlimited, discard new\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

// The partition consumers are the workers': each has its workers line, and
// none is reported missing.
func TestStatusPartitionConsumers(t *testing.T) {
	n := devtest.NATS(t)
	_, js := devtest.JetStream(t, n)
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.EnsureConsumers(t.Context(), js, stream.EventsStream, 2, stream.ConsumerConfig{AckWait: time.Minute}); err != nil {
		t.Fatal(err)
	}
	c := cluster{n: n, js: js}
	out := c.mustSluice(t, "status")
	for _, want := range []string{
		"consumer sluice-workers-p00 (the workers')\n",
		"consumer sluice-workers-p01 (the workers')\n",
		"  workers          none pulling, and nothing to do\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "missing") {
		t.Errorf("status reports a consumer missing:\n%s", out)
	}
}
