package main

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/config"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// cluster is an embedded NATS with the streams and the workers' consumer, as
// the gateway and the worker create them.
type cluster struct {
	n  *devstack.NATS
	js jetstream.JetStream
}

func newCluster(t *testing.T) cluster {
	t.Helper()
	n := devtest.NATS(t)
	_, js := devtest.JetStream(t, n)
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.EnsureConsumer(t.Context(), js, "", stream.ConsumerConfig{AckWait: time.Minute}); err != nil {
		t.Fatal(err)
	}
	return cluster{n: n, js: js}
}

// sluice runs the command in-process against c and returns its output.
func (c cluster) sluice(t *testing.T, args ...string) (string, error) {
	t.Helper()
	env := map[string]string{"SLUICE_NATS_URL": c.n.URL()}
	var out bytes.Buffer
	err := run(t.Context(), args, func(k string) string { return env[k] }, &out)
	return out.String(), err
}

func (c cluster) mustSluice(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.sluice(t, args...)
	if err != nil {
		t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// request is an accepted request as the gateway publishes it.
type request struct {
	meta envelope.Meta
	body []byte
}

func newRequest(tenant string, events int) request {
	var body bytes.Buffer
	for i := range events {
		fmt.Fprintf(&body, `{"i":%d,"msg":"event %d of %s"}`+"\n", i, i, tenant)
	}
	return request{
		meta: envelope.Meta{Tenant: tenant, BatchID: envelope.NewBatchID(), ReceivedAt: time.Now().UTC(), EventCount: events},
		body: body.Bytes(),
	}
}

// deadLetter publishes r to the dead-letter stream with the headers the
// worker sets: the original ones, its own Nats-Msg-Id, Sluice-Error and
// Sluice-Deliveries. It returns the DLQ sequence.
func (c cluster) deadLetter(t *testing.T, r request, cause string, deliveries int) uint64 {
	t.Helper()
	return c.deadLetterOf(t, r.meta.Tenant, r, cause, deliveries)
}

// deadLetterOf is deadLetter of a message published on
// sluice.events.<tenant>: the worker dead-letters it on sluice.dlq.<tenant>
// whatever its headers say.
func (c cluster) deadLetterOf(t *testing.T, tenant string, r request, cause string, deliveries int) uint64 {
	t.Helper()
	m := nats.NewMsg(stream.DLQSubject(tenant))
	r.meta.SetHeaders(m.Header)
	m.Header.Set(stream.HeaderMsgID, "dlq-"+envelope.NewBatchID()) // the worker's names the events stream's sequence
	m.Header.Set(stream.HeaderError, cause)
	m.Header.Set(stream.HeaderDeliveries, strconv.Itoa(deliveries))
	m.Data = r.body
	ack, err := c.js.PublishMsg(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func (c cluster) info(t *testing.T, name string) *jetstream.StreamInfo {
	t.Helper()
	st, err := c.js.Stream(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"status", "-h"}, {"dlq", "list", "-h"}, {"dlq", "replay", "--help"}, {"dlq", "purge", "-h"}} {
		var out bytes.Buffer
		err := run(t.Context(), args, func(string) string { return "" }, &out)
		if !errors.Is(err, config.ErrHelp) {
			t.Errorf("%v: err = %v", args, err)
		}
		if !strings.HasPrefix(out.String(), "Usage: sluice") {
			t.Errorf("%v: usage = %q", args, out.String())
		}
		if args[0] != "-h" && !strings.Contains(out.String(), "SLUICE_NATS_URL") {
			t.Errorf("%v: usage lacks the NATS settings:\n%s", args, out.String())
		}
	}
}
