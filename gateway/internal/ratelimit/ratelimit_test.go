package ratelimit

import (
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-ingest/sluice/gateway/internal/api"
	"github.com/sluice-ingest/sluice/gateway/internal/auth"
	"github.com/sluice-ingest/sluice/limiter"
	"github.com/sluice-ingest/sluice/limiter/redistest"
	"github.com/sluice-ingest/sluice/pkg/config"
)

// allowUntilDenied allows requests of cost events until the first denial
// and returns how many were allowed (at most 100) and every answer.
func allowUntilDenied(t *testing.T, a *Limiter, key auth.Key, events int) (int, []api.Decision) {
	t.Helper()
	var answers []api.Decision
	for range 100 {
		adm, err := a.Decide(t.Context(), key, events)
		if err != nil {
			t.Fatalf("decide %+v: %v", key, err)
		}
		answers = append(answers, adm)
		if !adm.Allowed {
			return len(answers) - 1, answers
		}
	}
	return len(answers), answers
}

// A key's own policy wins over SLUICE_RATE_LIMIT; a key without one gets the
// default; each tenant has its own count.
func TestPolicyOfKeyOrDefault(t *testing.T) {
	r := redistest.Start(t)
	a, _ := newRateLimiter(t, map[string]string{"SLUICE_REDIS_URL": r.URL(), "SLUICE_RATE_LIMIT": "5/h"})
	own := auth.Key{Tenant: "acme", Policy: "3/h"}
	def := auth.Key{Tenant: "beta"}

	n, answers := allowUntilDenied(t, a, own, 1)
	if n != 3 {
		t.Errorf("own policy 3/h allowed %d", n)
	}
	first, denied := answers[0], answers[len(answers)-1]
	if got := first.Header.Get("RateLimit-Policy"); got != `"tenant";q=3;w=3600` {
		t.Errorf("RateLimit-Policy = %s", got)
	}
	if got := first.Header.Get("RateLimit"); got != `"tenant";r=2;t=1200` {
		t.Errorf("RateLimit of the first request = %s", got)
	}
	if got := denied.Header.Get("RateLimit"); got != `"tenant";r=0;t=1200` {
		t.Errorf("RateLimit of the denial = %s", got)
	}
	if denied.RetryAfter <= 1190*time.Second || denied.RetryAfter > 1200*time.Second {
		t.Errorf("RetryAfter = %s, want just under 20m (one request's share of 3/h)", denied.RetryAfter)
	}

	n, answers = allowUntilDenied(t, a, def, 1)
	if n != 5 {
		t.Errorf("default policy 5/h allowed %d", n)
	}
	if got := answers[0].Header.Get("RateLimit-Policy"); got != `"default";q=5;w=3600` {
		t.Errorf("RateLimit-Policy of the default = %s", got)
	}
	// Another tenant with the same policy is counted apart.
	if n, _ := allowUntilDenied(t, a, auth.Key{Tenant: "gamma", Policy: "3/h"}, 1); n != 3 {
		t.Errorf("a second tenant with 3/h allowed %d", n)
	}
}

// Without SLUICE_RATE_LIMIT only keys with a policy are limited; tenants
// without one are admitted without headers.
func TestNoDefaultPolicy(t *testing.T) {
	r := redistest.Start(t)
	a, _ := newRateLimiter(t, map[string]string{"SLUICE_REDIS_URL": r.URL()})
	if n, _ := allowUntilDenied(t, a, auth.Key{Tenant: "beta"}, 1); n != 100 {
		t.Errorf("a tenant without a policy was denied after %d", n)
	}
	adm, err := a.Decide(t.Context(), auth.Key{Tenant: "beta"}, 1)
	if err != nil || !adm.Allowed || adm.Header != nil {
		t.Errorf("unlimited tenant: %+v, %v", adm, err)
	}
	if n, _ := allowUntilDenied(t, a, auth.Key{Tenant: "acme", Policy: "2/m"}, 1); n != 2 {
		t.Errorf("2/m allowed %d", n)
	}
}

// SLUICE_RATE_LIMIT=off admits everything, even keys with a policy, without
// headers, Redis or metrics: the URL is not even read.
func TestOff(t *testing.T) {
	a, reg := newRateLimiter(t, map[string]string{"SLUICE_RATE_LIMIT": "off", "SLUICE_REDIS_URL": "not a url"})
	if a.lim != nil || a.rdb != nil {
		t.Fatal("off built a limiter")
	}
	if n, _ := allowUntilDenied(t, a, auth.Key{Tenant: "acme", Policy: "1/h"}, 1); n != 100 {
		t.Errorf("off denied after %d", n)
	}
	adm, _ := a.Decide(t.Context(), auth.Key{Tenant: "acme", Policy: "1/h"}, 1)
	if adm.Header != nil {
		t.Errorf("off answered headers %v", adm.Header)
	}
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		t.Errorf("off registered %d metrics", len(mfs))
	}
}

// SLUICE_RATE_LIMIT_COST=events charges a request its event count; a
// request over the burst can never pass and is told to wait a period.
func TestEventsCost(t *testing.T) {
	r := redistest.Start(t)
	a, _ := newRateLimiter(t, map[string]string{"SLUICE_REDIS_URL": r.URL(), "SLUICE_RATE_LIMIT": "10/h", "SLUICE_RATE_LIMIT_COST": "events"})
	if !a.WeighsEvents() {
		t.Fatal("events cost does not weigh events")
	}
	key := auth.Key{Tenant: "acme"}
	for i, tt := range []struct {
		events    int
		allowed   bool
		rateLimit string
	}{
		{4, true, `"default";r=6;t=1440`},
		{4, true, `"default";r=2;t=2880`},
		{4, false, `"default";r=2;t=720`},
		{2, true, `"default";r=0;t=3600`},
	} {
		adm, err := a.Decide(t.Context(), key, tt.events)
		if err != nil {
			t.Fatal(err)
		}
		if adm.Allowed != tt.allowed || adm.Header.Get("RateLimit") != tt.rateLimit {
			t.Errorf("request %d (%d events): allowed %v, RateLimit %s; want %v, %s", i, tt.events, adm.Allowed, adm.Header.Get("RateLimit"), tt.allowed, tt.rateLimit)
		}
	}
	adm, err := a.Decide(t.Context(), auth.Key{Tenant: "fresh"}, 11)
	if err != nil || adm.Allowed || adm.RetryAfter != time.Hour {
		t.Errorf("11 events under 10/h: %+v, %v; want denied, retry after 1h", adm, err)
	}

	perRequest, _ := newRateLimiter(t, map[string]string{"SLUICE_REDIS_URL": r.URL(), "SLUICE_RATE_LIMIT": "10/h"})
	if perRequest.WeighsEvents() {
		t.Fatal("requests cost weighs events")
	}
	// Asked before the body is read, with 0 events: the request costs 1.
	if n, _ := allowUntilDenied(t, perRequest, auth.Key{Tenant: "other"}, 0); n != 10 {
		t.Errorf("10/h per request allowed %d", n)
	}
}

// What each SLUICE_LIMITER_ON_ERROR mode does when Redis is stopped, or up
// but silent (only the deadline ends a decision): every decision returns
// (the bound asserted is the late-answer bound plus a second, a hang guard
// for a shared machine), and the fallback shows in the metrics. A tenant
// Redis decided before it stopped is known: local and open go on from what
// Redis said (one of its 3/h used); local limits a tenant it never saw to
// its share, open admits it.
func TestModesWithoutRedis(t *testing.T) {
	const deadline = 50 * time.Millisecond
	for _, mode := range []string{"open", "closed", "local"} {
		for _, down := range []string{"stopped", "silent"} {
			t.Run(mode+"/"+down, func(t *testing.T) {
				r := redistest.Start(t)
				env := map[string]string{"SLUICE_REDIS_URL": r.URL(), "SLUICE_RATE_LIMIT": "3/h",
					"SLUICE_LIMITER_ON_ERROR": mode, "SLUICE_LIMITER_DEADLINE": deadline.String()}
				if down == "silent" {
					env["SLUICE_REDIS_URL"] = silentRedis(t)
				}
				// A cooldown longer than the test: the breaker stays open.
				a, reg := newRateLimiter(t, env, limiter.WithBreaker(5, time.Minute))
				key := auth.Key{Tenant: "acme"}
				if down == "stopped" {
					if adm, err := a.Decide(t.Context(), key, 1); err != nil || !adm.Allowed {
						t.Fatalf("with Redis up: %+v, %v", adm, err)
					}
					r.Stop()
				}
				var allowed int
				for i := range 8 {
					start := time.Now()
					adm, err := a.Decide(t.Context(), key, 1)
					if took := time.Since(start); took > 250*time.Millisecond+time.Second {
						t.Fatalf("decision %d took %s with a %s deadline", i, took, deadline)
					}
					if adm.Header.Get("RateLimit-Policy") != `"default";q=3;w=3600` {
						t.Errorf("decision %d: RateLimit-Policy %q", i, adm.Header.Get("RateLimit-Policy"))
					}
					switch mode {
					case "open":
						if err != nil || adm.Header.Get("RateLimit") != "" {
							t.Fatalf("open, decision %d: %+v, %v; want a decision without RateLimit", i, adm, err)
						}
					case "closed":
						if !errors.Is(err, limiter.ErrUnavailable) {
							t.Fatalf("closed, decision %d: %+v, %v; want ErrUnavailable", i, adm, err)
						}
					case "local":
						if err != nil || adm.Header.Get("RateLimit") == "" {
							t.Fatalf("local, decision %d: %+v, %v", i, adm, err)
						}
					}
					if adm.Allowed {
						allowed++
					}
				}
				want := map[string]int{"local/stopped": 2, "local/silent": 3, "open/stopped": 2, "open/silent": 8, "closed/stopped": 0, "closed/silent": 0}[mode+"/"+down]
				if allowed != want {
					t.Errorf("%s allowed %d of 8 at 3/h with one live instance, want %d", mode, allowed, want)
				}
				if got := counter(t, reg, "sluice_gateway_limiter_fallback_active", nil); got != 1 {
					t.Errorf("fallback_active = %v", got)
				}
				if got := counter(t, reg, "sluice_gateway_limiter_breaker_state", map[string]string{"state": "open"}); got != 1 {
					t.Errorf("breaker_state{state=open} = %v", got)
				}
				if got := counter(t, reg, "sluice_gateway_limiter_backend_errors_total", map[string]string{"op": "decide"}); got < 5 {
					t.Errorf("backend_errors_total{op=decide} = %v, want at least 5", got)
				}
				result := map[string]string{"open": "allowed", "closed": "error", "local": "denied"}[mode]
				if mode == "open" && down == "stopped" {
					result = "denied"
				}
				if got := counter(t, reg, "sluice_gateway_limiter_decisions_total", map[string]string{"result": result, "source": "fallback"}); got < 1 {
					t.Errorf("decisions_total{result=%s,source=fallback} = %v", result, got)
				}
				// The client honours the limiter's deadlines, so nothing waits
				// for go-redis's 3s read timeout on the silent server.
				start := time.Now()
				_ = a.Close()
				if took := time.Since(start); took > 2*time.Second {
					t.Errorf("Close took %s", took)
				}
			})
		}
	}
}

// The metrics count decisions by result and source, and no label carries a
// tenant or key.
func TestMetrics(t *testing.T) {
	r := redistest.Start(t)
	a, reg := newRateLimiter(t, map[string]string{"SLUICE_REDIS_URL": r.URL(), "SLUICE_RATE_LIMIT": "2/h"})
	for _, tenant := range []string{"acme", "beta"} {
		allowUntilDenied(t, a, auth.Key{Tenant: tenant}, 1)
	}
	if got := counter(t, reg, "sluice_gateway_limiter_decisions_total", map[string]string{"result": "allowed", "source": "redis"}); got != 4 {
		t.Errorf("allowed by redis: %v, want 4", got)
	}
	if got := counter(t, reg, "sluice_gateway_limiter_decisions_total", map[string]string{"result": "denied", "source": "redis"}); got != 2 {
		t.Errorf("denied by redis: %v, want 2", got)
	}
	if got := counter(t, reg, "sluice_gateway_limiter_breaker_state", map[string]string{"state": "closed"}); got != 1 {
		t.Errorf("breaker closed: %v", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"result": true, "source": true, "op": true, "state": true}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "sluice_gateway_limiter_") {
			t.Errorf("metric %s: want the prefix sluice_gateway_limiter_", mf.GetName())
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if !allowed[l.GetName()] || strings.Contains(l.GetValue(), "acme") {
					t.Errorf("metric %s has label %s=%s", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// Every bad value is refused by name; a bad Redis URL is refused by New
// without its password.
func TestSettingsErrors(t *testing.T) {
	for _, tt := range []struct{ env, value, want string }{
		{"SLUICE_RATE_LIMIT", "1000", "SLUICE_RATE_LIMIT"},
		{"SLUICE_RATE_LIMIT", "10/s,burst=x", "burst"},
		{"SLUICE_RATE_LIMIT_COST", "bytes", "SLUICE_RATE_LIMIT_COST"},
		{"SLUICE_LIMITER_ON_ERROR", "maybe", "SLUICE_LIMITER_ON_ERROR"},
		{"SLUICE_LIMITER_DEADLINE", "1us", "SLUICE_LIMITER_DEADLINE"},
	} {
		var s Settings
		cs := config.New("test", func(k string) string {
			if k == tt.env {
				return tt.value
			}
			return ""
		})
		s.Declare(cs)
		if err := cs.Parse(nil, io.Discard); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s=%s: err = %v, want one naming %s", tt.env, tt.value, err, tt.want)
		}
	}
	s := parseSettings(t, map[string]string{"SLUICE_RATE_LIMIT": "10/s", "SLUICE_REDIS_URL": "redis://:hunter2@h:6379/x"})
	_, err := New(s, prometheus.NewRegistry(), nil)
	if err == nil || !strings.Contains(err.Error(), "SLUICE_REDIS_URL redis://:xxxxx@h:6379/x") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad Redis URL: %v", err)
	}
	if err := ValidPolicy("60000/m"); err != nil {
		t.Errorf("ValidPolicy(60000/m): %v", err)
	}
	if err := ValidPolicy("fast"); !errors.Is(err, limiter.ErrInvalidPolicy) {
		t.Errorf("ValidPolicy(fast): %v", err)
	}
}

// SLUICE_LIMITER_SHADOW admits every request but counts the ones the policy
// would have refused.
func TestShadow(t *testing.T) {
	r := redistest.Start(t)
	a, reg := newRateLimiter(t, map[string]string{"SLUICE_REDIS_URL": r.URL(), "SLUICE_RATE_LIMIT": "3/h", "SLUICE_LIMITER_SHADOW": "true"})
	if n, _ := allowUntilDenied(t, a, auth.Key{Tenant: "acme"}, 1); n != 100 {
		t.Errorf("shadow mode denied after %d", n)
	}
	// The first refusal comes from Redis, the rest from the deny cache.
	var shadowDenied float64
	for _, src := range []string{"redis", "deny_cache"} {
		shadowDenied += counter(t, reg, "sluice_gateway_limiter_decisions_total", map[string]string{"result": "shadow_denied", "source": src})
	}
	if shadowDenied != 97 {
		t.Errorf("decisions_total{result=shadow_denied} = %v, want 97", shadowDenied)
	}
}

// A busy tenant is decided from allotments (the default SLUICE_LIMITER_ALLOT),
// and the units left when its traffic stops are counted as dropped.
func TestAllotmentMetrics(t *testing.T) {
	r := redistest.Start(t)
	a, reg := newRateLimiter(t, map[string]string{"SLUICE_REDIS_URL": r.URL(), "SLUICE_RATE_LIMIT": "1000000/s"})
	key := auth.Key{Tenant: "acme"}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 200 {
				if adm, err := a.Decide(t.Context(), key, 1); err != nil || !adm.Allowed {
					t.Errorf("admit: %+v, %v", adm, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := counter(t, reg, "sluice_gateway_limiter_decisions_total", map[string]string{"result": "allowed", "source": "allotment"}); got == 0 {
		t.Errorf("no decision of 3200 came from an allotment")
	}
	// The limiter's janitor expires held units every second.
	deadline := time.Now().Add(5 * time.Second)
	for counter(t, reg, "sluice_gateway_limiter_allotment_dropped_total", nil) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no allotment unit counted as dropped 5s after the traffic stopped")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
