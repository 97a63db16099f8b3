package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// arrival is one request as the gateway saw it.
type arrival struct {
	key     string
	decoded int // body bytes after gzip
	events  []json.RawMessage
}

// recorder is a gateway that decodes every request the way the real one
// reads {"events":[...]}, records it, and answers 202 with a batch id of
// its own unless refuse names another status for that request.
type recorder struct {
	refuse  func(n int) int // status for request n (from 0); 0 means 202
	release chan struct{}   // when set, each request waits for a value (or its context)
	entered chan struct{}   // when set, gets a value as each request arrives

	mu       sync.Mutex
	arrivals []arrival

	inFlight, maxInFlight atomic.Int32
}

func (g *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cur := g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	if g.entered != nil {
		g.entered <- struct{}{}
	}
	for {
		m := g.maxInFlight.Load()
		if cur <= m || g.maxInFlight.CompareAndSwap(m, cur) {
			break
		}
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var in struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(b, &in); err != nil || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, fmt.Sprintf("body %q: %v", b, err), http.StatusBadRequest)
		return
	}
	if g.release != nil {
		select {
		case <-g.release:
		case <-r.Context().Done():
			return
		}
	}
	g.mu.Lock()
	n := len(g.arrivals)
	g.arrivals = append(g.arrivals, arrival{key: r.Header.Get("Idempotency-Key"), decoded: len(b), events: in.Events})
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if g.refuse != nil {
		if status := g.refuse(n); status != 0 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]string{"error": "refused", "message": fmt.Sprintf("request %d", n)})
			return
		}
	}
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(Result{Accepted: len(in.Events), BatchID: fmt.Sprintf("batch-%d", n)})
}

func (g *recorder) got() []arrival {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]arrival(nil), g.arrivals...)
}

// results collects what WithResults reports.
type results struct {
	mu  sync.Mutex
	all []BatchResult
}

func (r *results) add(br BatchResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, br)
}

func (r *results) get() []BatchResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]BatchResult(nil), r.all...)
}

func newBatcher(t *testing.T, g *recorder, res *results, opts ...BatchOption) *Batcher {
	t.Helper()
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	c := New(srv.URL, "k", WithMaxBackoff(time.Millisecond))
	b, err := NewBatcher(c, append([]BatchOption{WithResults(res.add)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = b.Close(ctx)
	})
	return b
}

type ev struct {
	G   int    `json:"g"`
	N   int    `json:"n"`
	Pad string `json:"pad,omitempty"`
}

func addAll(t *testing.T, b *Batcher, g, n int, pad string) {
	t.Helper()
	for i := range n {
		if err := b.Add(ev{G: g, N: i, Pad: pad}); err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
	}
}

// seen counts every event that arrived by its (g, n).
func seen(t *testing.T, as []arrival) map[[2]int]int {
	t.Helper()
	m := map[[2]int]int{}
	for _, a := range as {
		for _, raw := range a.events {
			var e ev
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("event %s: %v", raw, err)
			}
			m[[2]int{e.G, e.N}]++
		}
	}
	return m
}

func TestBatcherFlushesByCount(t *testing.T) {
	g, res := &recorder{}, &results{}
	b := newBatcher(t, g, res, WithBatchEvents(10), WithBatchAge(time.Hour))
	addAll(t, b, 0, 25, "")
	if err := b.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	as := g.got()
	counts := map[int]int{}
	for _, a := range as {
		counts[len(a.events)]++
	}
	if len(as) != 3 || counts[10] != 2 || counts[5] != 1 {
		t.Errorf("batches of %v events, want two of 10 and one of 5", counts)
	}
	if s := seen(t, as); len(s) != 25 {
		t.Errorf("%d distinct events arrived, want 25", len(s))
	}
	ids := map[string]bool{}
	total := 0
	for _, r := range res.get() {
		if r.Err != nil || r.BatchID == "" || r.Events != r.Accepted {
			t.Errorf("result %+v", r)
		}
		ids[r.BatchID] = true
		total += r.Events
	}
	if len(ids) != 3 || total != 25 {
		t.Errorf("%d batch ids for %d events, want 3 for 25", len(ids), total)
	}
}

// Every body stays within WithBatchBytes, counted before compression, and
// a batch is closed only when the next event would not fit.
func TestBatcherFlushesByBytes(t *testing.T) {
	g, res := &recorder{}, &results{}
	const limit = 1000
	// One send at a time, so that the batches arrive in order.
	b := newBatcher(t, g, res, WithBatchBytes(limit), WithBatchAge(time.Hour), WithMaxInFlight(1))
	pad := strings.Repeat("x", 80) // each event is about 100 bytes
	addAll(t, b, 0, 100, pad)
	if err := b.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	as := g.got()
	for i, a := range as {
		if a.decoded > limit {
			t.Errorf("batch %d: %d bytes, over %d", i, a.decoded, limit)
		}
		if i < len(as)-1 && a.decoded+1+len(as[i+1].events[0]) <= limit {
			t.Errorf("batch %d: %d bytes closed though the next event (%d bytes) fit", i, a.decoded, len(as[i+1].events[0]))
		}
	}
	if s := seen(t, as); len(s) != 100 || len(as) < 10 {
		t.Errorf("%d events in %d batches, want 100 in at least 10", len(s), len(as))
	}
}

func TestBatcherFlushesByAge(t *testing.T) {
	g := &recorder{}
	got := make(chan BatchResult, 1)
	srv := httptest.NewServer(g)
	defer srv.Close()
	b, err := NewBatcher(New(srv.URL, "k"), WithBatchAge(50*time.Millisecond), WithResults(func(r BatchResult) { got <- r }))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(t.Context())
	addAll(t, b, 0, 3, "")
	select {
	case r := <-got: // no Flush: only the batch's age sends it
		if r.Err != nil || r.Events != 3 {
			t.Errorf("result %+v", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the batch was not sent by its age")
	}
	if as := g.got(); len(as) != 1 || len(as[0].events) != 3 {
		t.Errorf("arrivals %+v, want one batch of 3", as)
	}
}

// A 4xx is final: sent once, reported to the results and by Flush.
func TestBatcherRefusedBatchIsNotRetried(t *testing.T) {
	g, res := &recorder{refuse: func(int) int { return http.StatusBadRequest }}, &results{}
	b := newBatcher(t, g, res)
	addAll(t, b, 0, 4, "")
	err := b.Flush(t.Context())
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || !strings.Contains(err.Error(), "1 batches (4 events)") {
		t.Fatalf("flush: %v, want the 400 counted", err)
	}
	if n := len(g.got()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	rs := res.get()
	if len(rs) != 1 || !errors.As(rs[0].Err, &apiErr) || rs[0].Events != 4 || rs[0].BatchID != "" {
		t.Errorf("results %+v", rs)
	}
	if err := b.Flush(t.Context()); err != nil {
		t.Errorf("second flush: %v, want nil (the failure was reported)", err)
	}
}

// A 5xx is retried with the same Idempotency-Key and the same events.
func TestBatcherRetries5xxWithTheSameKey(t *testing.T) {
	g := &recorder{refuse: func(n int) int {
		if n < 2 {
			return http.StatusServiceUnavailable
		}
		return 0
	}}
	res := &results{}
	b := newBatcher(t, g, res)
	addAll(t, b, 0, 5, "")
	if err := b.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	as := g.got()
	if len(as) != 3 {
		t.Fatalf("%d requests, want 3", len(as))
	}
	for _, a := range as[1:] {
		if a.key == "" || a.key != as[0].key || len(a.events) != 5 {
			t.Errorf("attempt with key %q and %d events, want %q and 5", a.key, len(a.events), as[0].key)
		}
	}
	rs := res.get()
	if len(rs) != 1 || rs[0].Err != nil || rs[0].BatchID != "batch-2" || rs[0].IdempotencyKey != as[0].key {
		t.Errorf("results %+v", rs)
	}
}

// Retries of a batch stop where the duplicate window would end (2s window,
// Retry-After 1: two attempts), and the batch fails with ErrRetryWindow.
func TestBatcherRetriesStayInsideTheDuplicateWindow(t *testing.T) {
	g := &gatewayScript{statuses: []int{503, 503, 503, 503}, retryAfter: "1"}
	srv := httptest.NewServer(g)
	defer srv.Close()
	b, err := NewBatcher(New(srv.URL, "k", WithDuplicateWindow(2*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(t.Context())
	if err := b.Add(map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(t.Context()); !errors.Is(err, ErrRetryWindow) {
		t.Fatalf("flush: %v, want ErrRetryWindow", err)
	}
	if len(g.keys) != 2 || g.keys[0] != g.keys[1] {
		t.Errorf("keys %q, want one key twice", g.keys)
	}
}

// With the gateway holding every request, Add fills the buffer exactly to
// its bound and then refuses; once the gateway answers, Add works again.
func TestBatcherBufferFull(t *testing.T) {
	g, res := &recorder{release: make(chan struct{})}, &results{}
	const batch = 200
	b := newBatcher(t, g, res, WithBatchBytes(batch), WithBufferBytes(3*batch), WithMaxInFlight(1), WithBatchAge(time.Hour))
	one, _ := json.Marshal(ev{G: 0, N: 0})
	size := len(one) + 1 // what an event counts: itself and its comma
	added := 0
	for ; added < 1000; added++ {
		err := b.Add(ev{G: 0, N: added % 10}) // same length as one
		if errors.Is(err, ErrBufferFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if want := 3 * batch / size; added != want {
		t.Errorf("buffer full after %d events, want %d (%d bytes each in %d)", added, want, size, 3*batch)
	}
	if err := b.Add(ev{}); !errors.Is(err, ErrBufferFull) {
		t.Errorf("add to a full buffer: %v, want ErrBufferFull", err)
	}
	close(g.release)
	if err := b.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(ev{G: 1}); err != nil {
		t.Errorf("add after the buffer drained: %v", err)
	}
	if err := b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, a := range g.got() {
		total += len(a.events)
	}
	if total != added+1 {
		t.Errorf("%d events arrived, want %d", total, added+1)
	}
}

// Close with a context that ends returns at once, and every batch not sent
// is reported as failed; Add is then refused.
func TestBatcherCloseWithCancelledContext(t *testing.T) {
	g, res := &recorder{release: make(chan struct{})}, &results{} // never released
	b := newBatcher(t, g, res, WithBatchEvents(10), WithMaxInFlight(2))
	addAll(t, b, 0, 45, "")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := b.Close(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "5 batches (45 events)") {
		t.Fatalf("close: %v, want context.Canceled and 5 batches counted", err)
	}
	rs := res.get()
	events := 0
	for _, r := range rs {
		if !errors.Is(r.Err, context.Canceled) {
			t.Errorf("result %+v, want a cancelled send", r)
		}
		events += r.Events
	}
	if len(rs) != 5 || events != 45 {
		t.Errorf("%d results for %d events, want 5 for 45", len(rs), events)
	}
	if err := b.Add(ev{}); !errors.Is(err, ErrClosed) {
		t.Errorf("add after close: %v, want ErrClosed", err)
	}
	if err := b.Close(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("second close: %v, want ErrClosed", err)
	}
}

// Many goroutines add at once: every event arrives exactly once, and no
// more than WithMaxInFlight requests are ever open at the gateway.
func TestBatcherConcurrentAdd(t *testing.T) {
	g, res := &recorder{}, &results{}
	b := newBatcher(t, g, res, WithBatchEvents(50), WithBatchBytes(2000), WithBufferBytes(4000), WithMaxInFlight(3), WithBatchAge(5*time.Millisecond))
	const goroutines, each = 16, 300
	var wg sync.WaitGroup
	for gi := range goroutines {
		wg.Go(func() {
			for i := 0; i < each; {
				err := b.Add(ev{G: gi, N: i})
				if errors.Is(err, ErrBufferFull) {
					time.Sleep(time.Millisecond) // the buffer drains as batches are sent
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				i++
			}
		})
	}
	wg.Wait()
	if err := b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := seen(t, g.got())
	for gi := range goroutines {
		for i := range each {
			if s[[2]int{gi, i}] != 1 {
				t.Fatalf("event %d/%d arrived %d times, want once", gi, i, s[[2]int{gi, i}])
			}
		}
	}
	total := 0
	for _, r := range res.get() {
		if r.Err != nil {
			t.Errorf("result %+v", r)
		}
		total += r.Accepted
	}
	if total != goroutines*each || len(s) != goroutines*each {
		t.Errorf("%d accepted, %d distinct arrived, want %d", total, len(s), goroutines*each)
	}
	if m := g.maxInFlight.Load(); m > 3 {
		t.Errorf("%d requests in flight at once, want at most 3", m)
	}
}

func TestBatcherRefusesBadEventsAndOptions(t *testing.T) {
	b := newBatcher(t, &recorder{}, &results{}, WithBatchBytes(100))
	for _, e := range []any{1, "x", []int{1}, nil} {
		if err := b.Add(e); !errors.Is(err, ErrNotObject) {
			t.Errorf("add %v: %v, want ErrNotObject", e, err)
		}
	}
	if err := b.Add(ev{Pad: strings.Repeat("x", 100)}); !errors.Is(err, ErrEventTooLarge) {
		t.Errorf("add a large event: %v, want ErrEventTooLarge", err)
	}
	if err := b.Add(map[string]any{"f": func() {}}); err == nil {
		t.Error("add an event that cannot be encoded: nil error")
	}
	c := New("http://127.0.0.1:1", "k")
	for _, o := range []BatchOption{WithBatchEvents(0), WithBatchBytes(10), WithBatchAge(0), WithBufferBytes(1000), WithMaxInFlight(0)} {
		if _, err := NewBatcher(c, o); err == nil {
			t.Errorf("option %v: nil error", o)
		}
	}
}

// With the gateway holding every request, no more than WithMaxInFlight
// batches reach it while the others wait their turn.
func TestBatcherBoundsSendsInFlight(t *testing.T) {
	g, res := &recorder{release: make(chan struct{}), entered: make(chan struct{}, 5)}, &results{}
	b := newBatcher(t, g, res, WithBatchEvents(1), WithMaxInFlight(2))
	addAll(t, b, 0, 5, "") // five batches
	<-g.entered
	<-g.entered
	// Give a third send the time to show up, were it not held back.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := b.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("flush with the gateway holding the requests: %v", err)
	}
	close(g.release)
	if err := b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if m, n := g.maxInFlight.Load(), len(g.got()); m != 2 || n != 5 {
		t.Errorf("%d requests at the gateway at once, %d arrived; want 2 and 5", m, n)
	}
}
