package client

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// gatewayScript answers with the given statuses in turn, recording each
// request's idempotency key and decoded body.
type gatewayScript struct {
	mu         sync.Mutex
	retryAfter string // Retry-After of refusals; "0" when empty
	statuses   []int
	keys       []string
	bodies     []string
}

func (g *gatewayScript) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.keys = append(g.keys, r.Header.Get("Idempotency-Key"))
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	b, _ := io.ReadAll(body)
	g.bodies = append(g.bodies, string(b))
	status := g.statuses[0]
	g.statuses = g.statuses[1:]
	w.Header().Set("Content-Type", "application/json")
	switch status {
	case http.StatusAccepted:
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(Result{Accepted: 2, BatchID: "b1"})
	default:
		w.Header().Set("Retry-After", cmp.Or(g.retryAfter, "0"))
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": "overloaded", "message": "busy"})
	}
}

func TestRetriesTemporaryFailuresWithTheSameKey(t *testing.T) {
	g := &gatewayScript{statuses: []int{503, 429, 202}}
	srv := httptest.NewServer(g)
	defer srv.Close()
	c := New(srv.URL, "k", WithMaxBackoff(time.Millisecond))
	res, err := c.Send(t.Context(), map[string]int{"a": 1}, map[string]int{"b": 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.BatchID != "b1" || res.Accepted != 2 {
		t.Errorf("result %+v", res)
	}
	if len(g.keys) != 3 || g.keys[0] == "" || g.keys[0] != g.keys[1] || g.keys[1] != g.keys[2] {
		t.Errorf("idempotency keys %q, want one key repeated 3 times", g.keys)
	}
	if g.bodies[0] != `{"events":[{"a":1},{"b":2}]}` {
		t.Errorf("body %s", g.bodies[0])
	}
}

func TestPermanentErrorIsNotRetried(t *testing.T) {
	g := &gatewayScript{statuses: []int{400, 202}}
	srv := httptest.NewServer(g)
	defer srv.Close()
	_, err := New(srv.URL, "k", WithGzip(false)).Send(t.Context(), 1)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Code != "overloaded" || apiErr.Temporary() {
		t.Fatalf("err = %v", err)
	}
	if len(g.keys) != 1 {
		t.Errorf("%d requests, want 1", len(g.keys))
	}
}

func TestGivesUpAfterRetries(t *testing.T) {
	g := &gatewayScript{statuses: []int{503, 503, 503}}
	srv := httptest.NewServer(g)
	defer srv.Close()
	_, err := New(srv.URL, "k", WithRetries(2), WithMaxBackoff(time.Millisecond)).Send(t.Context(), 1)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 503 {
		t.Fatalf("err = %v", err)
	}
	if len(g.keys) != 3 {
		t.Errorf("%d requests, want 3", len(g.keys))
	}
}

func TestHonoursRetryAfterAndStopsWithTheContext(t *testing.T) {
	g := &gatewayScript{statuses: []int{http.StatusRequestTimeout, 202}, retryAfter: "60"}
	srv := httptest.NewServer(g)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	// 408 is retried, after the answer's Retry-After (60s), which outlives ctx.
	_, err := New(srv.URL, "k").Send(ctx, 1)
	var apiErr *APIError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &apiErr) || apiErr.Status != http.StatusRequestTimeout || apiErr.RetryAfter != time.Minute {
		t.Fatalf("err = %v, want the 408 with Retry-After 60s and the context's deadline", err)
	}
	if len(g.keys) != 1 {
		t.Errorf("%d requests, want 1 (the retry waits for Retry-After)", len(g.keys))
	}
}

// Retries stop when the next one could not end inside nine tenths of the
// duplicate window: with a 2s window and Retry-After 1, the second attempt
// (at 1s) is the last, whatever the retry count.
func TestRetriesStayInsideTheDuplicateWindow(t *testing.T) {
	g := &gatewayScript{statuses: []int{503, 503, 503, 503, 503, 503}, retryAfter: "1"}
	srv := httptest.NewServer(g)
	defer srv.Close()
	_, err := New(srv.URL, "k", WithRetries(5), WithDuplicateWindow(2*time.Second)).Send(t.Context(), 1)
	var apiErr *APIError
	if !errors.Is(err, ErrRetryWindow) || !errors.As(err, &apiErr) || apiErr.Status != 503 {
		t.Fatalf("err = %v, want the 503 and ErrRetryWindow", err)
	}
	if len(g.keys) != 2 {
		t.Errorf("%d requests, want 2", len(g.keys))
	}
}

// An attempt that gets no answer is cut where the duplicate window ends,
// not after the HTTP client's own timeout, and is not retried.
func TestSilentGatewayIsCutAtTheDuplicateWindow(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		_, _ = io.Copy(io.Discard, r.Body) // so that the server notices the client leaving
		<-r.Context().Done()
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err := New(srv.URL, "k", WithDuplicateWindow(time.Second)).Send(ctx, 1)
	if !errors.Is(err, ErrRetryWindow) || ctx.Err() != nil {
		t.Fatalf("err = %v, want ErrRetryWindow before the test's own deadline", err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}
