package api

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-ingest/sluice/gateway/internal/auth"
	"github.com/sluice-ingest/sluice/gateway/internal/body"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// Every body shape and encoding becomes one message holding the events as
// compact NDJSON, with the contract's headers.
func TestShapesPublished(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	two := `{"a":1}` + "\n" + `{"b":[2,"x"]}` + "\n"
	for _, tt := range []struct {
		name, ct, ce, body, want string
	}{
		{"wrapper", "application/json", "", `{"events":[{"a":1},{"b":[2,"x"]}]}`, two},
		{"array", "", "", `[{"a":1}, {"b": [2, "x"]}]`, two},
		{"object", "application/json", "", `{"a": 1}`, `{"a":1}` + "\n"},
		{"ndjson", "application/x-ndjson", "", "{\"a\":1}\n{\"b\":[2,\"x\"]}\n", two},
		{"jsonl", "application/jsonl", "", "{\"a\":1}\n\n{\"b\":[2,\"x\"]}", two},
		{"classic", "", "", `{"version":"1.0","token":"t","data":[{"a":1},{"b":[2,"x"]}]}`, two},
		{"gzip", "", "gzip", gzipped(`[{"a":1},{"b":[2,"x"]}]`), two},
		{"zstd", "application/x-ndjson", "zstd", zstded("{\"a\":1}\n{\"b\":[2,\"x\"]}\n"), two},
	} {
		before := time.Now().UTC()
		a := g.mustDo(req{key: "key-b", ct: tt.ct, ce: tt.ce, body: strings.NewReader(tt.body)})
		if a.status != http.StatusAccepted || a.Accepted != strings.Count(tt.want, "\n") || a.BatchID == "" || a.Duplicate {
			t.Fatalf("%s: %+v", tt.name, a)
		}
		msgs := g.messages()
		m := msgs[len(msgs)-1]
		if string(m.Data) != tt.want {
			t.Errorf("%s: body %q, want %q", tt.name, m.Data, tt.want)
		}
		meta, err := envelope.MetaFromHeaders(m.Header)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		// Published on sluice.events.beta, stored in beta's partition.
		if tenant, _ := stream.TenantOf(m.Subject); tenant != "beta" || meta.Tenant != "beta" || meta.BatchID != a.BatchID ||
			m.Header.Get(stream.HeaderMsgID) != "" || meta.EventCount != a.Accepted || meta.ReceivedAt.Before(before.Add(-time.Second)) {
			t.Errorf("%s: subject %s, headers %v, answer %+v", tt.name, m.Subject, m.Header, a)
		}
	}
}

// Hostile and broken requests: each gets its status and error code, and
// the stream receives nothing. Limits are the production defaults.
func TestBadInputsPublishNothing(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	big := func(prefix string) *fillReader { return &fillReader{prefix: []byte(prefix), fill: 'x', n: 64 << 20} }
	tiny := strings.Repeat(`{},`, 200000)
	for _, tt := range []struct {
		name   string
		r      req
		status int
		code   string
	}{
		{"empty body", req{}, 400, "empty_body"},
		{"blank body", req{body: strings.NewReader(" \r\n\t")}, 400, "empty_body"},
		{"empty array", req{body: strings.NewReader("[]")}, 400, "no_events"},
		{"empty wrapper", req{body: strings.NewReader(`{"events":[]}`)}, 400, "no_events"},
		{"number as an event", req{body: strings.NewReader(`[{"a":1},42]`)}, 400, "invalid_event"},
		{"number as the body", req{body: strings.NewReader(`42`)}, 400, "invalid_body"},
		{"classic data is a string", req{body: strings.NewReader(`{"version":"1","token":"t","data":"x"}`)}, 400, "invalid_body"},
		{"events is an object", req{body: strings.NewReader(`{"events":{"a":1}}`)}, 400, "invalid_body"},
		{"events twice", req{body: strings.NewReader(`{"events":[{}],"events":[{}]}`)}, 400, "invalid_body"},
		{"ndjson with one bad line", req{ct: "application/x-ndjson", body: strings.NewReader("{\"a\":1}\n{\"a\":2}\n{\"a\":\n{\"a\":4}\n")}, 400, "malformed_body"},
		{"ndjson line not an object", req{ct: "application/x-ndjson", body: strings.NewReader("{\"a\":1}\n[1]\n")}, 400, "invalid_event"},
		{"invalid utf-8", req{body: strings.NewReader("{\"a\":\"caf\xe9\"}")}, 400, "malformed_body"},
		{"invalid utf-8, ndjson", req{ct: "application/x-ndjson", body: strings.NewReader("{\"a\":1}\n{\"a\":\"caf\xe9\"}\n")}, 400, "malformed_body"},
		{"control character", req{body: strings.NewReader("{\"a\":\"\x00\"}")}, 400, "malformed_body"},
		{"trailing garbage", req{body: strings.NewReader(`{"a":1}}`)}, 400, "malformed_body"},
		{"truncated json", req{body: strings.NewReader(`{"events":[{"a":1},{"b":`)}, 400, "malformed_body"},
		{"truncated gzip", req{ce: "gzip", body: strings.NewReader(gzipped(`[{"a":1},{"b":2}]`)[:25])}, 400, "malformed_body"},
		{"not gzip", req{ce: "gzip", body: strings.NewReader(`[{"a":1}]`)}, 400, "malformed_body"},
		{"not zstd", req{ce: "zstd", body: strings.NewReader(`[{"a":1}]`)}, 400, "malformed_body"},
		{"gzip bomb (300 MiB decoded)", req{ce: "gzip", body: strings.NewReader(string(bomb(gzipped, `{"events":[{"a":"`, 300)))}, 413, "decoded_too_large"},
		{"zstd bomb (300 MiB decoded)", req{ce: "zstd", body: strings.NewReader(string(bomb(zstded, `{"events":[{"a":"`, 300)))}, 413, "decoded_too_large"},
		{"64 MiB body", req{body: big(`{"events":[{"a":"`), length: 64<<20 + 17}, 413, "body_too_large"},
		{"64 MiB body, chunked", req{body: big(`{"events":[{"a":"`), length: -1}, 413, "body_too_large"},
		{"200,000 tiny events", req{body: strings.NewReader("[" + tiny + "{}]")}, 413, "too_many_events"},
		{"200,000 tiny events, ndjson", req{ct: "application/x-ndjson", body: strings.NewReader(strings.Repeat("{}\n", 200000))}, 413, "too_many_events"},
		{"10,000-deep nesting", req{body: strings.NewReader(`{"events":[{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "}]}")}, 413, "too_deep"},
		{"xml", req{ct: "application/xml", body: strings.NewReader("<a/>")}, 415, "unsupported_media_type"},
		{"brotli", req{ce: "br", body: strings.NewReader("{}")}, 415, "unsupported_encoding"},
		{"GET", req{method: http.MethodGet}, 405, "method_not_allowed"},
		{"unknown path", req{path: "/v2/things"}, 404, "not_found"},
		{"no key", req{key: "-", body: strings.NewReader(`{"a":1}`)}, 401, "unauthorized"},
		{"unknown key", req{key: "key-z", body: strings.NewReader(`{"a":1}`)}, 401, "unauthorized"},
		{"long idempotency key", req{idemKey: strings.Repeat("k", 300), body: strings.NewReader(`{"a":1}`)}, 400, "invalid_idempotency_key"},
	} {
		r := tt.r
		switch r.key {
		case "":
			r.key = "key-a"
		case "-":
			r.key = ""
		}
		if r.body == nil {
			r.body = strings.NewReader("")
		}
		a, err := g.do(r)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if a.status != tt.status || a.Error != tt.code || a.Message == "" {
			t.Errorf("%s: %d %s %q, want %d %s", tt.name, a.status, a.Error, a.Message, tt.status, tt.code)
		}
		if tt.status == 405 && a.header.Get("Allow") != "POST" {
			t.Errorf("%s: Allow %q", tt.name, a.header.Get("Allow"))
		}
		if n := g.streamInfo().State.Msgs; n != 0 {
			t.Fatalf("%s: the stream holds %d messages", tt.name, n)
		}
	}
}

// heapBound is how much heap in use may grow while the gateway refuses a
// 300 MiB gzip bomb or a 64 MiB body with the default limits (1 MiB on the
// wire, 4 MiB decoded): the decoded limit plus buffers, far below the size
// of either body. docs/api.md (Streaming decode and memory) documents it.
const heapBound = 32 << 20

func TestHeapStaysBounded(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	gzBomb := bomb(gzipped, `{"events":[{"a":"`, 300)
	t.Logf("gzip bomb: %d KiB on the wire, 300 MiB decoded", len(gzBomb)>>10)
	for _, tt := range []struct {
		name string
		r    func() req
		code string
	}{
		{"gzip bomb", func() req { return req{key: "key-a", ce: "gzip", body: strings.NewReader(string(gzBomb))} }, "decoded_too_large"},
		{"64 MiB chunked body", func() req {
			return req{key: "key-a", length: -1, body: &fillReader{prefix: []byte(`[{"a":"`), fill: 'x', n: 64 << 20}}
		}, "body_too_large"},
		{"64 MiB of whitespace", func() req {
			return req{key: "key-a", length: -1, body: &fillReader{prefix: []byte(`[`), fill: ' ', n: 64 << 20}}
		}, "body_too_large"},
	} {
		var a answer
		growth := peakHeapGrowth(func() { a = g.mustDo(tt.r()) })
		if a.status != http.StatusRequestEntityTooLarge || a.Error != tt.code {
			t.Errorf("%s: %d %s", tt.name, a.status, a.Error)
		}
		t.Logf("%s: heap in use grew by at most %.1f MiB", tt.name, float64(growth)/(1<<20))
		if growth > heapBound {
			t.Errorf("%s: heap in use grew by %d bytes, over the bound of %d", tt.name, growth, heapBound)
		}
	}
}

// peakHeapGrowth runs fn and returns by how much heap in use (bytes in heap
// objects, reachable or not yet swept) rose at its highest, sampled with
// runtime/metrics every millisecond.
func peakHeapGrowth(fn func()) uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	var peak atomic.Uint64
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if v := read(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	fn()
	close(done)
	<-stopped
	if p := peak.Load(); p > base {
		return p - base
	}
	return 0
}

// A retry with the same Idempotency-Key and the same events is stored once
// and answered with the same batch id, however the body is encoded, and
// also after the workers consumed the first copy (the work queue deleted
// it). The same key with other events is a new request: stored, with its
// own batch id, never "duplicate". The key is scoped by tenant.
func TestIdempotentRetry(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	const body = `[{"a":1},{"a":2}]`
	send := func(key, body, ce string) answer {
		return g.mustDo(req{key: key, idemKey: "order-42", ce: ce, body: strings.NewReader(body)})
	}
	first, retry := send("key-a", body, ""), send("key-a", gzipped(body), "gzip")
	if first.status != 202 || retry.status != 202 || first.BatchID != retry.BatchID || first.Duplicate || !retry.Duplicate {
		t.Fatalf("first %+v, retry %+v", first, retry)
	}
	if n := g.streamInfo().State.Msgs; n != 1 {
		t.Fatalf("stream holds %d messages, want 1", n)
	}

	reused := send("key-a", `[{"a":1},{"a":3}]`, "")
	if reused.status != 202 || reused.Duplicate || reused.BatchID == first.BatchID {
		t.Fatalf("same key, other events: %+v (first %+v)", reused, first)
	}
	msgs := g.messages()
	if len(msgs) != 2 || string(msgs[1].Data) != "{\"a\":1}\n{\"a\":3}\n" || msgs[1].Header.Get(stream.HeaderBatchID) != reused.BatchID {
		t.Fatalf("stream after the reuse: %d messages, last %q", len(msgs), msgs[len(msgs)-1].Data)
	}

	// The workers take the first copy: a retry inside the window is still
	// a duplicate.
	s, err := g.inspect.Stream(t.Context(), stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(t.Context(), msgs[0].Sequence); err != nil {
		t.Fatal(err)
	}
	if late := send("key-a", body, ""); late.status != 202 || !late.Duplicate || late.BatchID != first.BatchID {
		t.Fatalf("retry after the first copy was consumed: %+v", late)
	}
	if n := g.streamInfo().State.Msgs; n != 1 {
		t.Fatalf("stream holds %d messages, want 1 (the reuse)", n)
	}

	other := send("key-b", body, "")
	if other.status != 202 || other.Duplicate || other.BatchID == first.BatchID {
		t.Fatalf("same key, other tenant: %+v", other)
	}
	if n := g.streamInfo().State.Msgs; n != 2 {
		t.Fatalf("stream holds %d messages, want 2", n)
	}
}

// slowPublisher holds every publish until released: a stream that is slow
// to take writes.
type slowPublisher struct {
	Publisher
	entered chan struct{}
	release chan struct{}
}

func (p *slowPublisher) PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	p.entered <- struct{}{}
	<-p.release
	return p.Publisher.PublishMsgAsync(msg, opts...)
}

// With MaxInflight 1 and a publish in flight, the next request is refused
// at once with 503 overloaded and Retry-After, and served once there is room.
func TestOverloadAnswersAtOnce(t *testing.T) {
	slow := &slowPublisher{entered: make(chan struct{}, 1), release: make(chan struct{})}
	g := startGateway(t, gatewayOptions{
		cfg:  Config{MaxInflight: 1},
		wrap: func(p Publisher) Publisher { slow.Publisher = p; return slow },
	})
	first := make(chan answer, 1)
	go func() { first <- g.post(`{"n":1}`) }()
	<-slow.entered

	a := g.post(`{"n":2}`)
	if a.status != http.StatusServiceUnavailable || a.Error != "overloaded" || a.header.Get("Retry-After") == "" {
		t.Fatalf("second request: %+v", a)
	}
	close(slow.release)
	if a := <-first; a.status != http.StatusAccepted {
		t.Fatalf("first request: %+v", a)
	}
	go func() { <-slow.entered }()
	if a := g.post(`{"n":3}`); a.status != http.StatusAccepted {
		t.Fatalf("third request: %+v", a)
	}
	if n := g.streamInfo().State.Msgs; n != 2 {
		t.Fatalf("stream holds %d messages, want 2", n)
	}
}

// A full stream (discard new) is answered 503 stream_full; what was accepted
// before stays.
func TestStreamFull(t *testing.T) {
	g := startGateway(t, gatewayOptions{streamMaxBytes: 4 << 10})
	accepted := 0
	for i := range 100 {
		a := g.post(fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, strings.Repeat("p", 300)))
		if a.status == http.StatusAccepted {
			accepted++
			continue
		}
		if a.status != http.StatusServiceUnavailable || a.Error != "stream_full" || a.header.Get("Retry-After") == "" {
			t.Fatalf("request %d: %+v", i, a)
		}
		if n := g.streamInfo().State.Msgs; n != uint64(accepted) || accepted == 0 {
			t.Fatalf("stream holds %d messages, %d were accepted", n, accepted)
		}
		return
	}
	t.Fatal("the stream never filled")
}

// While NATS is down every request is answered 503 within the publish
// timeout; once it is back requests are accepted again, and every request
// answered 202 before, during or after is in the stream.
func TestBrokerDownAndBack(t *testing.T) {
	const timeout = time.Second
	g := startGateway(t, gatewayOptions{cfg: Config{PublishTimeout: timeout}})
	var (
		mu       sync.Mutex
		accepted []string
		refused  atomic.Int64
	)
	record := func(a answer, took time.Duration) {
		t.Helper()
		switch {
		case took > timeout+2*time.Second:
			t.Errorf("an answer took %s, over the publish timeout of %s", took, timeout)
		case a.status == http.StatusAccepted:
			mu.Lock()
			accepted = append(accepted, a.BatchID)
			mu.Unlock()
		case a.status == http.StatusServiceUnavailable && a.header.Get("Retry-After") != "":
			refused.Add(1)
		default:
			t.Errorf("answer %+v", a)
		}
	}
	for i := range 10 {
		a := g.post(fmt.Sprintf(`{"before":%d}`, i))
		record(a, 0)
	}

	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				start := time.Now()
				a, err := g.do(req{key: "key-a", body: strings.NewReader(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))})
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("request failed: %v", err)
					}
					return
				}
				record(a, time.Since(start))
			}
		})
	}
	g.nats.Shutdown()
	devtest.Eventually(t, 20*time.Second, 10*time.Millisecond, func() bool { return refused.Load() >= 20 },
		"requests were not refused while NATS was down")
	if err := g.nats.Restart(); err != nil {
		t.Fatal(err)
	}
	devtest.Eventually(t, 20*time.Second, 20*time.Millisecond, func() bool {
		return g.post(`{"after":1}`).status == http.StatusAccepted
	}, "requests were not accepted after NATS came back")
	stop()
	wg.Wait()

	stored := map[string]bool{}
	for _, m := range g.messages() {
		for _, id := range requestIDs(t, m) {
			stored[id] = true
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range accepted {
		if !stored[id] {
			t.Errorf("batch %s was answered 202 but is not in the stream", id)
		}
	}
	t.Logf("%d accepted, %d refused while NATS was down", len(accepted), refused.Load())
}

// With a consumer lag limit, requests are refused with 503 backlogged once
// the workers fall behind, and accepted again once they catch up.
func TestConsumerLag(t *testing.T) {
	g := startGateway(t, gatewayOptions{maxLag: 2})
	cons, err := stream.EnsureConsumer(t.Context(), g.inspect, stream.EventsStream, stream.ConsumerConfig{AckWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}

	for i := range 3 {
		if a := g.post(fmt.Sprintf(`{"i":%d}`, i)); a.status != http.StatusAccepted {
			t.Fatalf("request %d: %+v", i, a)
		}
	}
	var a answer
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool {
		a = g.post(`{"late":1}`)
		return a.status == http.StatusServiceUnavailable
	}, "requests were not refused with 3 messages pending and a limit of 2")
	if a.Error != "backlogged" || a.header.Get("Retry-After") == "" {
		t.Fatalf("%+v", a)
	}
	batch, err := cons.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool {
		return g.post(`{"caught up":1}`).status == http.StatusAccepted
	}, "requests were not accepted after the workers caught up")
}

// rateLimiter records what it was asked and refuses every second request.
type rateLimiter struct {
	mu     sync.Mutex
	events []int
}

func (a *rateLimiter) Decide(_ context.Context, key auth.Key, events int) (Decision, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, events)
	h := http.Header{"Ratelimit-Policy": {`"tenant";q=2;w=1`}}
	if len(a.events)%2 == 0 {
		return Decision{Allowed: false, RetryAfter: 1500 * time.Millisecond, Header: h}, nil
	}
	return Decision{Allowed: true, Header: h}, nil
}

// The RateLimiter hook is asked with the request's event count; a refusal is a
// 429 with Retry-After and the rateLimiter's headers, and publishes nothing.
func TestRateLimiter(t *testing.T) {
	adm := &rateLimiter{}
	g := startGateway(t, gatewayOptions{cfg: Config{RateLimit: adm}})
	ok := g.post(`[{"a":1},{"a":2},{"a":3}]`)
	limited := g.post(`{"a":1}`)
	if ok.status != 202 || ok.header.Get("RateLimit-Policy") == "" {
		t.Fatalf("allowed: %+v", ok)
	}
	if limited.status != 429 || limited.Error != "rate_limited" || limited.header.Get("Retry-After") != "2" || limited.header.Get("RateLimit-Policy") == "" {
		t.Fatalf("limited: %+v", limited)
	}
	if fmt.Sprint(adm.events) != "[3 1]" {
		t.Errorf("rateLimiter saw event counts %v, want [3 1]", adm.events)
	}
	if n := g.streamInfo().State.Msgs; n != 1 {
		t.Fatalf("stream holds %d messages, want 1", n)
	}
}

// The metrics count what the handler did.
func TestMetrics(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	g.post(`[{"a":1},{"a":2}]`)
	g.post(`nope`)
	m := g.handler.cfg.Metrics
	if got := testutil.ToFloat64(m.requests.WithLabelValues("202")); got != 1 {
		t.Errorf("202s: %v", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("400")); got != 1 {
		t.Errorf("400s: %v", got)
	}
	if got := testutil.ToFloat64(m.eventsAccepted); got != 2 {
		t.Errorf("events accepted: %v", got)
	}
	if got := testutil.ToFloat64(m.inflightRequests) + testutil.ToFloat64(m.inflightPublishes); got != 0 {
		t.Errorf("in flight after the requests ended: %v", got)
	}
}

// The decoded limit follows the broker's max_payload when that is smaller:
// a body that decodes past it is refused by the decoder (413, naming the
// limit) as soon as it passes it, and nothing is published.
func TestDecodedLimitFollowsTheBroker(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	if got := g.handler.CapDecodedBytes(65 << 10); got != 64<<10 {
		t.Fatalf("decoded limit under a 65 KiB max_payload = %d, want 64 KiB", got)
	}
	a := g.post(`[{"a":"` + strings.Repeat("x", 70<<10) + `"}]`)
	if a.status != http.StatusRequestEntityTooLarge || a.Error != "decoded_too_large" || !strings.Contains(a.Message, "65536 bytes") {
		t.Fatalf("body over the broker's size: %+v", a)
	}
	if n := g.streamInfo().State.Msgs; n != 0 {
		t.Fatalf("stream holds %d messages, want 0", n)
	}
	if got := g.handler.CapDecodedBytes(64 << 20); got != body.DefaultMaxDecodedBytes {
		t.Fatalf("decoded limit under a 64 MiB max_payload = %d, want the configured %d", got, body.DefaultMaxDecodedBytes)
	}
}
