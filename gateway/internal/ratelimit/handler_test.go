package ratelimit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-ingest/sluice/gateway/internal/api"
	"github.com/sluice-ingest/sluice/gateway/internal/auth"
	"github.com/sluice-ingest/sluice/limiter/redistest"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// startHandler serves the ingest handler, rate limited by a, publishing to
// an embedded JetStream, and returns the URL of /v1/events. Keys: key-a
// (acme, 2/h) and key-b (beta, no policy of its own).
func startHandler(t *testing.T, a *Limiter) string {
	t.Helper()
	_, js := devtest.JetStream(t, devtest.NATS(t))
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	keys, err := auth.ParseKeys(strings.NewReader("key-a acme 2/h\nkey-b beta\n"), ValidPolicy)
	if err != nil {
		t.Fatal(err)
	}
	h := api.NewHandler(api.Config{
		Auth:                auth.NewAuthenticator(keys),
		Publisher:           js,
		RateLimit:           a,
		RateLimitBeforeBody: !a.WeighsEvents(),
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/v1/events"
}

// answer is a response with its body.
type answer struct {
	status int
	header http.Header
	body   string
}

func post(t *testing.T, url, key, body string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// The 202s and the 429 carry the IETF headers; the 429 is the contract's
// JSON error with Retry-After. Counting requests, the limit comes before the
// body is read: an over-limit request with a broken body is still a 429.
func TestHandlerRateLimited(t *testing.T) {
	r := redistest.Start(t)
	a, _ := newRateLimiter(t, map[string]string{"SLUICE_REDIS_URL": r.URL()})
	url := startHandler(t, a)

	for i, want := range []string{`"tenant";r=1;t=1800`, `"tenant";r=0;t=3600`} {
		got := post(t, url, "key-a", `{"events":[{"a":1},{"a":2}]}`)
		if got.status != http.StatusAccepted || got.header.Get("RateLimit-Policy") != `"tenant";q=2;w=3600` || got.header.Get("RateLimit") != want {
			t.Fatalf("request %d: %d %v %s", i, got.status, got.header, got.body)
		}
	}
	for _, body := range []string{`{"a":1}`, `{not json`} {
		got := post(t, url, "key-a", body)
		if got.status != http.StatusTooManyRequests ||
			got.header.Get("Content-Type") != "application/json" ||
			got.body != `{"error":"rate_limited","message":"tenant rate limit exceeded"}`+"\n" ||
			got.header.Get("Retry-After") != "1800" ||
			got.header.Get("RateLimit-Policy") != `"tenant";q=2;w=3600` ||
			got.header.Get("RateLimit") != `"tenant";r=0;t=1800` {
			t.Errorf("over the limit, body %s: %d %v %s", body, got.status, got.header, got.body)
		}
	}
	// beta has no policy and there is no default: no limit, no headers.
	for range 3 {
		if got := post(t, url, "key-b", `{"a":1}`); got.status != http.StatusAccepted || got.header.Get("RateLimit-Policy") != "" {
			t.Fatalf("unlimited tenant: %d %v %s", got.status, got.header, got.body)
		}
	}
}

// Counting events, the body is decoded first: a broken body is a 400 that
// costs nothing, and a request's events are its cost.
func TestHandlerEventsCost(t *testing.T) {
	r := redistest.Start(t)
	a, _ := newRateLimiter(t, map[string]string{"SLUICE_REDIS_URL": r.URL(), "SLUICE_RATE_LIMIT_COST": "events"})
	url := startHandler(t, a)
	if got := post(t, url, "key-a", `{not json`); got.status != http.StatusBadRequest || got.header.Get("RateLimit-Policy") != "" {
		t.Fatalf("broken body: %d %v %s", got.status, got.header, got.body)
	}
	if got := post(t, url, "key-a", `[{"a":1},{"a":2}]`); got.status != http.StatusAccepted || got.header.Get("RateLimit") != `"tenant";r=0;t=3600` {
		t.Fatalf("two events under 2/h: %d %v %s", got.status, got.header, got.body)
	}
	if got := post(t, url, "key-a", `{"a":1}`); got.status != http.StatusTooManyRequests || got.header.Get("Retry-After") != "1800" {
		t.Fatalf("third event: %d %v %s", got.status, got.header, got.body)
	}
}

// SLUICE_LIMITER_ON_ERROR=closed without Redis: 503 limiter_unavailable
// with Retry-After, and the policy header.
func TestHandlerClosedWithoutRedis(t *testing.T) {
	r := redistest.Start(t)
	a, _ := newRateLimiter(t, map[string]string{"SLUICE_REDIS_URL": r.URL(), "SLUICE_LIMITER_ON_ERROR": "closed", "SLUICE_LIMITER_DEADLINE": "50ms"})
	url := startHandler(t, a)
	r.Stop()
	got := post(t, url, "key-a", `{"a":1}`)
	if got.status != http.StatusServiceUnavailable ||
		got.body != `{"error":"limiter_unavailable","message":"rate limiter unavailable; retry later"}`+"\n" ||
		got.header.Get("Retry-After") != "1" || got.header.Get("RateLimit-Policy") != `"tenant";q=2;w=3600` {
		t.Fatalf("closed without Redis: %d %v %s", got.status, got.header, got.body)
	}
}
