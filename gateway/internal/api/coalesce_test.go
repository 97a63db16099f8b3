package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// gatedPublisher holds the first hold publishes until release is closed,
// and records the headers of every message it is given.
type gatedPublisher struct {
	Publisher
	hold    atomic.Int64
	entered chan struct{}
	release chan struct{}

	mu      sync.Mutex
	headers []nats.Header
}

func newGatedPublisher(hold int) *gatedPublisher {
	p := &gatedPublisher{entered: make(chan struct{}, hold), release: make(chan struct{})}
	p.hold.Store(int64(hold))
	return p
}

func (p *gatedPublisher) PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	p.mu.Lock()
	p.headers = append(p.headers, msg.Header)
	p.mu.Unlock()
	if p.hold.Add(-1) >= 0 {
		p.entered <- struct{}{}
		<-p.release
	}
	return p.Publisher.PublishMsgAsync(msg, opts...)
}

// coalesced is the number of requests of each coalesced message it was given.
func (p *gatedPublisher) coalesced() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n []int
	for _, h := range p.headers {
		if v := h.Get(stream.HeaderRequests); v != "" {
			n = append(n, strings.Count(v, " ")+1)
		}
	}
	return n
}

// waiting is the number of requests of subject waiting to be coalesced.
func (c *coalescer) waiting(subject string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	if l := c.lanes[subject]; l != nil {
		for _, g := range l.pending {
			n += len(g.waiters)
		}
	}
	return n
}

// doOrError is do for another goroutine than the test's: a failure is
// reported with t.Error.
func (g *gateway) doOrError(r req) answer {
	a, err := g.do(r)
	if err != nil {
		g.t.Error(err)
	}
	return a
}

// startHeld starts a gateway whose first PublishesPerSubject publishes
// are held, posts that many requests of acme and waits until they are.
func startHeld(t *testing.T, o gatewayOptions) (*gateway, *gatedPublisher, chan answer) {
	gate := newGatedPublisher(PublishesPerSubject)
	o.wrap = func(p Publisher) Publisher { gate.Publisher = p; return gate }
	g := startGateway(t, o)
	held := make(chan answer, PublishesPerSubject)
	for i := range PublishesPerSubject {
		go func() {
			held <- g.doOrError(req{key: "key-a", ct: "application/json", body: strings.NewReader(fmt.Sprintf(`{"held":%d}`, i))})
		}()
		<-gate.entered
	}
	return g, gate, held
}

// postWaiting posts n requests of acme, request k with k%3+1 events
// {"r":k,"i":j}, and waits until the coalescer holds them all (when
// coalescing is on).
func postWaiting(t *testing.T, g *gateway, n int) []chan answer {
	t.Helper()
	out := make([]chan answer, n)
	for k := range out {
		out[k] = make(chan answer, 1)
		var body strings.Builder
		for j := range k%3 + 1 {
			fmt.Fprintf(&body, "{\"r\":%d,\"i\":%d}\n", k, j)
		}
		go func() {
			out[k] <- g.doOrError(req{key: "key-a", ct: "application/x-ndjson", body: strings.NewReader(body.String())})
		}()
	}
	if c := g.handler.coalesce; c != nil {
		devtest.Eventually(t, 10*time.Second, 5*time.Millisecond, func() bool {
			return c.waiting(stream.EventsSubject("acme")) == n
		}, fmt.Sprintf("%d requests never waited to be coalesced", n))
	}
	return out
}

// Requests of one tenant that arrive while its publishes are in flight go
// out as one message when one completes; each 202 names its own batch id,
// under which the message holds exactly its events. With coalescing off,
// every request is its own message.
func TestConcurrentRequestsCoalesce(t *testing.T) {
	const n = 20
	for _, tc := range []struct {
		name     string
		off      bool
		messages int
	}{{"on", false, PublishesPerSubject + 1}, {"off", true, PublishesPerSubject + n}} {
		t.Run(tc.name, func(t *testing.T) {
			g, gate, held := startHeld(t, gatewayOptions{noCoalesce: tc.off})
			answers := postWaiting(t, g, n)
			close(gate.release)
			for range PublishesPerSubject {
				if a := <-held; a.status != http.StatusAccepted {
					t.Fatalf("held request: %+v", a)
				}
			}
			results := make([]answer, n)
			for k, ch := range answers {
				results[k] = <-ch
			}

			msgs := g.messages()
			if len(msgs) != tc.messages {
				t.Fatalf("%d messages for %d requests, want %d", len(msgs), n+PublishesPerSubject, tc.messages)
			}
			var per dto.Metric
			if err := g.handler.cfg.Metrics.requestsPerMessage.Write(&per); err != nil {
				t.Fatal(err)
			}
			if h := per.GetHistogram(); h.GetSampleCount() != uint64(tc.messages) || h.GetSampleSum() != n+PublishesPerSubject {
				t.Errorf("sluice_gateway_requests_per_message: %d messages holding %.0f requests, want %d holding %d",
					h.GetSampleCount(), h.GetSampleSum(), tc.messages, n+PublishesPerSubject)
			}
			metas := map[string]envelope.Meta{}
			bodies := map[string][]byte{}
			for _, m := range msgs {
				meta, err := envelope.MetaOf(m.Subject, m.Header)
				if err != nil {
					t.Fatal(err)
				}
				metas[meta.BatchID], bodies[meta.BatchID] = meta, m.Data
			}
			seen := map[string]bool{}
			for k, a := range results {
				if a.status != http.StatusAccepted || a.Accepted != k%3+1 || seen[a.BatchID] {
					t.Fatalf("request %d: %+v", k, a)
				}
				seen[a.BatchID] = true
				// The request's events, from its message.
				msgID, i, coalesced := envelope.SplitBatchID(a.BatchID)
				if coalesced == tc.off {
					t.Fatalf("request %d: batch id %s with coalescing %s", k, a.BatchID, tc.name)
				}
				if !coalesced {
					msgID = a.BatchID
				}
				meta, ok := metas[msgID]
				if !ok {
					t.Fatalf("request %d: no message %s", k, msgID)
				}
				var got []string
				err := meta.EachRequestEvent(bodies[msgID], func(req envelope.Meta, j int, ev []byte) error {
					if req.BatchID == a.BatchID {
						got = append(got, fmt.Sprintf("%d:%s", j, ev))
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				var want []string
				for j := range k%3 + 1 {
					want = append(want, fmt.Sprintf("%d:{\"r\":%d,\"i\":%d}", j, k, j))
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("request %d (%s): events %v, want %v", k, a.BatchID, got, want)
				}
				if coalesced && meta.Requests[i].Events != k%3+1 {
					t.Errorf("request %d: %d events in %s", k, meta.Requests[i].Events, stream.HeaderRequests)
				}
			}
			if c := gate.coalesced(); !tc.off && (len(c) != 1 || c[0] != n) {
				t.Errorf("coalesced messages of %v requests, want one of %d", c, n)
			}
		})
	}
}

// A coalesced message the broker refuses answers every one of its requests
// with the error, as it would a request published alone.
func TestCoalescedPublishFailsEveryWaiter(t *testing.T) {
	const n = 10
	g, gate, held := startHeld(t, gatewayOptions{})
	answers := postWaiting(t, g, n)
	// Fill the stream (discard new): every publish from now on is refused.
	s, err := g.inspect.Stream(t.Context(), stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxBytes = 1
	if _, err := g.inspect.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	close(gate.release)
	for range PublishesPerSubject {
		if a := <-held; a.status != http.StatusServiceUnavailable || a.Error != "stream_full" {
			t.Fatalf("held request: %+v", a)
		}
	}
	for k, ch := range answers {
		if a := <-ch; a.status != http.StatusServiceUnavailable || a.Error != "stream_full" || a.header.Get("Retry-After") == "" {
			t.Errorf("request %d: %+v, want 503 stream_full with Retry-After", k, a)
		}
	}
	if c := gate.coalesced(); len(c) != 1 || c[0] != n {
		t.Errorf("coalesced messages of %v requests, want one of %d", c, n)
	}
	if msgs := g.streamInfo().State.Msgs; msgs != 0 {
		t.Errorf("stream holds %d messages", msgs)
	}
}

// Requests with an Idempotency-Key are published alone, at once, even
// while requests of their tenant wait to be coalesced, and a retry is
// answered duplicate with the same batch id.
func TestKeyedRequestsStayAlone(t *testing.T) {
	g, gate, held := startHeld(t, gatewayOptions{})
	answers := postWaiting(t, g, 3)
	first := map[string]string{}
	for i := range 4 {
		body := fmt.Sprintf(`{"keyed":%d}`, i)
		a := g.mustDo(req{key: "key-a", ct: "application/json", idemKey: fmt.Sprint("k", i), body: strings.NewReader(body)})
		if a.status != http.StatusAccepted || a.Duplicate || strings.Contains(a.BatchID, "-") {
			t.Fatalf("keyed request %d: %+v", i, a)
		}
		first[fmt.Sprint("k", i)] = a.BatchID
	}
	if n := g.streamInfo().State.Msgs; n != 4 {
		t.Fatalf("%d messages while the others wait, want the 4 keyed ones", n)
	}
	close(gate.release)
	for range PublishesPerSubject {
		<-held
	}
	for _, ch := range answers {
		if a := <-ch; a.status != http.StatusAccepted {
			t.Fatalf("unkeyed request: %+v", a)
		}
	}
	before := g.streamInfo().State.Msgs
	a := g.mustDo(req{key: "key-a", ct: "application/json", idemKey: "k2", body: strings.NewReader(`{"keyed":2}`)})
	if a.status != http.StatusAccepted || !a.Duplicate || a.BatchID != first["k2"] {
		t.Fatalf("retry of k2: %+v, want duplicate of %s", a, first["k2"])
	}
	if after := g.streamInfo().State.Msgs; after != before {
		t.Errorf("the retry added a message: %d -> %d", before, after)
	}
	for _, m := range g.messages() {
		if id := m.Header.Get(stream.HeaderMsgID); id != "" && m.Header.Get(stream.HeaderRequests) != "" {
			t.Errorf("a keyed request (%s) in a coalesced message", id)
		}
	}
}

// A request whose client goes away while it waits to be coalesced leaves
// its group, is published with nothing, and is counted as code 499, not as
// a 503 of the gateway's.
func TestClientGoneIsNotA503(t *testing.T) {
	g, gate, held := startHeld(t, gatewayOptions{})
	// Released before the servers stop (cleanups run last first), so that
	// a failing check does not leave the held requests hanging.
	release := sync.OnceFunc(func() { close(gate.release) })
	t.Cleanup(release)
	ctx, cancel := context.WithCancel(t.Context())
	gone := make(chan error, 1)
	go func() {
		_, err := g.do(req{key: "key-a", ct: "application/json", body: strings.NewReader(`{"gone":1}`), ctx: ctx})
		gone <- err
	}()
	c := g.handler.coalesce
	devtest.Eventually(t, 10*time.Second, 5*time.Millisecond, func() bool {
		return c.waiting(stream.EventsSubject("acme")) == 1
	}, "the request never waited to be coalesced")
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled request returned %v", err)
	}
	m := g.handler.cfg.Metrics
	devtest.Eventually(t, 10*time.Second, 5*time.Millisecond, func() bool {
		return testutil.ToFloat64(m.requests.WithLabelValues(clientClosed)) == 1
	}, "the request whose client went away was not counted as 499")
	release()
	for range PublishesPerSubject {
		if a := <-held; a.status != http.StatusAccepted {
			t.Fatalf("held request: %+v", a)
		}
	}
	if n := testutil.ToFloat64(m.requests.WithLabelValues("503")); n != 0 {
		t.Errorf("%v requests counted as 503", n)
	}
	if msgs := g.messages(); len(msgs) != PublishesPerSubject {
		t.Errorf("%d messages, want the %d held ones: the cancelled request was published", len(msgs), PublishesPerSubject)
	}
}

// A message holds at most MaxCoalesced requests, at most max_payload of
// bodies and headers, and requests of one hour.
func TestCoalescedMessageBounds(t *testing.T) {
	c := newCoalescer(nil, 64<<10)
	hour := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *waiter {
		return &waiter{meta: envelope.Meta{Tenant: "acme", ReceivedAt: hour.Add(d), EventCount: 1}, body: []byte("{}\n")}
	}
	sizes := func(l *lane) []int {
		var n []int
		for _, g := range l.pending {
			n = append(n, len(g.waiters))
		}
		return n
	}
	l := &lane{}
	for range MaxCoalesced + 1 {
		c.join(l, at(time.Minute))
	}
	c.join(l, at(time.Hour-time.Nanosecond))
	c.join(l, at(time.Hour)) // the next hour
	if got, want := fmt.Sprint(sizes(l)), fmt.Sprint([]int{MaxCoalesced, 2, 1}); got != want {
		t.Errorf("groups of %s requests, want %s", got, want)
	}

	l = &lane{}
	big := at(0)
	big.body = make([]byte, 30<<10)
	for range 3 {
		c.join(l, big)
	}
	if got := sizes(l); len(got) != 2 || got[0] != 2 {
		t.Errorf("30 KiB requests under a 64 KiB max_payload: groups of %v, want 2 then 1", got)
	}
	for _, g := range l.pending {
		if g.bytes > 64<<10-headerRoom {
			t.Errorf("a group of %d bytes", g.bytes)
		}
	}
}

// OTLP requests (/v1/logs) coalesce like /v1/events: each answer names
// its own request's batch id in Sluice-Batch-Id.
func TestOTLPRequestsCoalesce(t *testing.T) {
	const n = 3
	g, gate, held := startHeld(t, gatewayOptions{})
	ids := make(chan string, n)
	for i := range n {
		go func() {
			body := fmt.Sprintf(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"r%d"}}]}]}]}`, i)
			r, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, g.logsURL(), strings.NewReader(body))
			r.Header.Set("Authorization", "Bearer key-a")
			r.Header.Set("Content-Type", "application/json")
			resp, err := g.client.Do(r)
			if err != nil {
				t.Error(err)
				ids <- ""
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("OTLP request %d: status %d", i, resp.StatusCode)
			}
			ids <- resp.Header.Get("Sluice-Batch-Id")
		}()
	}
	devtest.Eventually(t, 10*time.Second, 5*time.Millisecond, func() bool {
		return g.handler.coalesce.waiting(stream.EventsSubject("acme")) == n
	}, "OTLP requests never waited to be coalesced")
	close(gate.release)
	for range PublishesPerSubject {
		<-held
	}
	seen := map[int]bool{}
	for range n {
		id := <-ids
		if _, i, ok := envelope.SplitBatchID(id); !ok || seen[i] {
			t.Errorf("Sluice-Batch-Id %q", id)
		} else {
			seen[i] = true
		}
	}
	if c := gate.coalesced(); len(c) != 1 || c[0] != n {
		t.Errorf("coalesced messages of %v requests, want one of %d", c, n)
	}
}
