package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/pkg/ledger"
	"github.com/sluice-ingest/sluice/pkg/receipts"
)

// TestReceipts serves receipts the worker wrote: the key's tenant sees its
// own; another tenant's batch id, an unknown one and one that is no batch
// id at all are 404 not_found, as is any id before the bucket exists.
func TestReceipts(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	g.handler.cfg.Receipts = receipts.NewReader(g.js)
	get := func(key, id string) (int, map[string]any) {
		t.Helper()
		r, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, strings.TrimSuffix(g.url, "/v1/events")+"/v1/receipts/"+id, nil)
		if key != "" {
			r.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := g.client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s: %d %q: %v", id, resp.StatusCode, b, err)
		}
		return resp.StatusCode, body
	}
	a := g.post(`{"events":[{"x":1},{"x":2}]}`)
	if status, body := get("key-a", a.BatchID); status != http.StatusNotFound || body["error"] != "not_found" {
		t.Errorf("before any worker: %d %v", status, body)
	}

	kv, err := receipts.Ensure(t.Context(), g.inspect, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	key := "tenant=acme/dt=2026-12-01/hour=14/00000000000000000001-00000000000000000001.ndjson.gz"
	at := time.Date(2026, 12, 1, 14, 0, 3, 0, time.UTC)
	if _, err := receipts.NewWriter(g.inspect, kv).Record(t.Context(), []receipts.Batch{{Tenant: "acme", BatchID: a.BatchID, Events: 2}},
		receipts.Outcome{ID: receipts.ObjectOutcome(key), Key: key, At: at}); err != nil {
		t.Fatal(err)
	}
	status, body := get("key-a", a.BatchID)
	want := `{"batch_id":"` + a.BatchID + `","events":2,"landed_at":"2026-12-01T14:00:03Z","objects":[{"events":2,"key":"` + key + `"}],"status":"landed"}`
	if got, _ := json.Marshal(body); status != http.StatusOK || string(got) != want {
		t.Errorf("own receipt: %d %s, want %s", status, got, want)
	}
	for _, c := range []struct {
		key, id string
		status  int
		code    string
	}{
		{"key-b", a.BatchID, http.StatusNotFound, "not_found"}, // another tenant's
		{"key-a", "0000000000000000000000000a", http.StatusNotFound, "not_found"},
		{"key-a", "not.a.batch", http.StatusNotFound, "not_found"},
		{"key-a", strings.Repeat("a", 300), http.StatusNotFound, "not_found"},
		{"", a.BatchID, http.StatusUnauthorized, "unauthorized"},
		{"nope", a.BatchID, http.StatusUnauthorized, "unauthorized"},
	} {
		if status, body := get(c.key, c.id); status != c.status || body["error"] != c.code || body["message"] == "" {
			t.Errorf("%s with %q: %d %v, want %d %s", c.id, c.key, status, body, c.status, c.code)
		}
	}
	if ans := g.mustDo(req{method: http.MethodPost, path: "/v1/receipts/" + a.BatchID, key: "key-a"}); ans.status != http.StatusMethodNotAllowed || ans.header.Get("Allow") != "GET" {
		t.Errorf("POST: %+v", ans)
	}
}

// TestAcceptedIsCounted: every event answered 202 is counted accepted in
// its tenant's hour, once, and a duplicate retry (the same Idempotency-Key)
// is not counted again.
func TestAcceptedIsCounted(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	if err := ledger.Ensure(t.Context(), g.inspect, 1); err != nil {
		t.Fatal(err)
	}
	tally := ledger.NewTally(g.js, slog.New(slog.DiscardHandler))
	g.handler.cfg.Tally = tally
	start := time.Now().UTC()
	for range 3 {
		g.post(`[{"x":1},{"x":2}]`)
	}
	for range 2 {
		if a := g.mustDo(req{key: "key-a", idemKey: "retry-1", body: strings.NewReader(`{"x":1}`)}); a.status != http.StatusAccepted {
			t.Fatalf("%+v", a)
		}
	}
	g.mustDo(req{key: "key-b", body: strings.NewReader(`{"x":1}`)})
	g.mustDo(req{key: "key-a", body: strings.NewReader(`[]`)}) // refused: not counted
	if left := tally.Flush(t.Context()); left != 0 {
		t.Fatalf("%d increments not flushed", left)
	}
	for _, tenant := range []string{"acme", "beta"} {
		c, err := ledger.Read(t.Context(), g.inspect, tenant, start, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, h := range c {
			n += h.Accepted
		}
		if want := map[string]int64{"acme": 7, "beta": 1}[tenant]; n != want {
			t.Errorf("%s accepted %d, want %d", tenant, n, want)
		}
	}
}
