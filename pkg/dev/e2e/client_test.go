package e2e

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/client"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
)

// TestClientAgainstGateway sends through the SDK to the real gateway: a
// gzip body is accepted, a retry with the same idempotency key is a
// duplicate with the same batch id, and a bad key is a permanent error.
func TestClientAgainstGateway(t *testing.T) {
	st := startStack(t, "key-a acme\n", nil)
	base := strings.TrimSuffix(st.ingest, "/v1/events")
	c := client.New(base, "key-a")
	res, err := c.Send(t.Context(), map[string]any{"a": 1}, map[string]any{"b": 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 2 || res.BatchID == "" || res.Duplicate {
		t.Errorf("first send: %+v", res)
	}
	body := []byte(`{"events":[{"x":1}]}`)
	first, err := c.SendRaw(t.Context(), body, "application/json", "retry-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.SendRaw(t.Context(), body, "application/json", "retry-1")
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.BatchID != first.BatchID {
		t.Errorf("retry: %+v, want duplicate of %+v", again, first)
	}
	_, err = client.New(base, "wrong").Send(t.Context(), map[string]any{"a": 1})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Code != "unauthorized" {
		t.Errorf("bad key: err = %v", err)
	}
}

// TestBatcherAgainstGateway sends events one by one through the SDK's
// Batcher to the real gateway with its default limits, uncompressed so
// that the bodies meet the wire limit too: every batch is accepted (none
// is too large), each result names its batch, and every event lands in S3
// exactly once.
func TestBatcherAgainstGateway(t *testing.T) {
	st := startStack(t, "key-a acme\n", nil)
	base := strings.TrimSuffix(st.ingest, "/v1/events")
	var (
		mu      sync.Mutex
		results []client.BatchResult
	)
	b, err := client.NewBatcher(client.New(base, "key-a", client.WithGzip(false)),
		client.WithResults(func(r client.BatchResult) {
			mu.Lock()
			defer mu.Unlock()
			results = append(results, r)
		}))
	if err != nil {
		t.Fatal(err)
	}
	const events = 3000 // 1 KiB each: batches closed by bytes and by count
	pad := strings.Repeat("p", 1000)
	for i := range events {
		if err := b.Add(sentEvent{Req: 1, N: i, Pad: pad}); err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
	}
	if err := b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	accepted, ids := 0, map[string]bool{}
	for _, r := range results {
		if r.Err != nil || r.BatchID == "" || r.Accepted != r.Events {
			t.Errorf("batch %+v", r)
		}
		accepted += r.Accepted
		ids[r.BatchID] = true
	}
	if accepted != events || len(ids) != len(results) || len(results) < 6 {
		t.Fatalf("%d events accepted in %d batches (%d ids), want %d in at least 6", accepted, len(results), len(ids), events)
	}
	devtest.Eventually(t, 60*time.Second, 200*time.Millisecond, func() bool {
		count, _, _ := readLines(t, st)
		return len(count) >= events
	}, "every event in S3")
	count, line, _ := readLines(t, st)
	ns := map[int]int{}
	for id, c := range count {
		if c != 1 {
			t.Errorf("event %s stored %d times", id, c)
		}
		var sl storedLine
		if err := json.Unmarshal([]byte(line[id]), &sl); err != nil {
			t.Fatal(err)
		}
		ns[sl.Data.N]++
	}
	if len(ns) != events {
		t.Errorf("%d distinct events stored, want %d", len(ns), events)
	}
}
