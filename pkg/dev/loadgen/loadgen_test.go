package loadgen

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func server(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%10 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestClosedStopsAtMaxRequests(t *testing.T) {
	srv, n := server(t)
	res := Closed(t.Context(), NewClient(4), Target{URL: srv.URL, Body: []byte(`{}`)}, 4, time.Minute, 200)
	if n.Load() != 200 || res.Answered() != 200 {
		t.Fatalf("server saw %d, answered %d; want 200", n.Load(), res.Answered())
	}
	if res.Statuses["202"] != 180 || res.Statuses["503"] != 20 || res.OK() != 180 {
		t.Errorf("statuses %v, OK %d", res.Statuses, res.OK())
	}
	if res.Percentile(0.99) <= 0 || res.Percentile(0.5) > res.Percentile(0.99) {
		t.Errorf("p50 %s p99 %s", res.Percentile(0.5), res.Percentile(0.99))
	}
}

func TestOpenSendsRateTimesDuration(t *testing.T) {
	srv, n := server(t)
	res := Open(t.Context(), NewClient(8), Target{URL: srv.URL, Body: []byte(`{}`)}, 500, 400*time.Millisecond, 8)
	if n.Load() != 200 || res.Answered() != 200 {
		t.Fatalf("server saw %d, answered %d; want 200 (500/s for 0.4s)", n.Load(), res.Answered())
	}
	if res.Elapsed < 390*time.Millisecond {
		t.Errorf("200 requests at 500/s took %s: not paced", res.Elapsed)
	}
}
