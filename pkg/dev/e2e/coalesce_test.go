package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/receipts"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// TestCoalescedRequestsLand drives many concurrent requests of one tenant
// through the real gateway (coalescing on, its default) and worker. The
// stream stores fewer messages than requests; every accepted event is in
// S3 once, with the id <its request's batch id>-<index> and its own
// request's received_at; every batch id's receipt is landed with its own
// event count, from the gateway and from `sluice receipt`. A coalesced
// message the worker cannot store dead-letters each of its requests.
func TestCoalescedRequestsLand(t *testing.T) {
	st := startStack(t, "key-a acme\nkey-b beta\n", nil)
	const requests, clients = 480, 48
	type sent struct {
		acceptedReq
		before, after time.Time
	}
	var (
		mu       sync.Mutex
		accepted = map[int]sent{}
		wg       sync.WaitGroup
		client   = &http.Client{Timeout: 10 * time.Second}
		jobs     = make(chan int)
	)
	for range clients {
		wg.Go(func() {
			for req := range jobs {
				before := time.Now()
				a, err := post(t, client, st.ingest, "key-a", req, 1+req%5)
				after := time.Now()
				if err != nil {
					t.Error(err)
					continue
				}
				mu.Lock()
				accepted[req] = sent{a, before, after}
				mu.Unlock()
			}
		})
	}
	for req := range requests {
		jobs <- req
	}
	close(jobs)
	wg.Wait()
	if len(accepted) != requests {
		t.Fatalf("%d of %d requests accepted", len(accepted), requests)
	}

	_, js := devtest.JetStream(t, st.nats)
	s, err := js.Stream(t.Context(), stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if msgs := s.CachedInfo().State.LastSeq; msgs >= requests {
		t.Fatalf("the stream stored %d messages for %d requests: nothing was coalesced", msgs, requests)
	} else {
		t.Logf("%d requests in %d messages", requests, msgs)
	}
	want := 0
	for _, a := range accepted {
		want += a.events
	}
	devtest.Eventually(t, 60*time.Second, 250*time.Millisecond, func() bool {
		s, err := js.Stream(t.Context(), stream.EventsStream)
		return err == nil && s.CachedInfo().State.Msgs == 0
	}, "stream not drained")
	count, line, _ := readLines(t, st)
	if len(count) != want {
		t.Errorf("%d distinct events in S3, %d accepted", len(count), want)
	}
	gw := strings.TrimSuffix(st.ingest, "/v1/events") + "/v1/receipts/"
	for req, a := range accepted {
		var at time.Time
		for n := range a.events {
			id := fmt.Sprintf("%s-%d", a.batchID, n)
			if count[id] != 1 {
				t.Fatalf("request %d: event %s stored %d times", req, id, count[id])
			}
			var sl storedLine
			if err := json.Unmarshal([]byte(line[id]), &sl); err != nil {
				t.Fatal(err)
			}
			if sl.Data.Req != req || sl.Data.N != n || sl.Tenant != "acme" {
				t.Fatalf("request %d: %s holds %s", req, id, line[id])
			}
			if sl.ReceivedAt.Before(a.before) || sl.ReceivedAt.After(a.after) || (n > 0 && !sl.ReceivedAt.Equal(at)) {
				t.Fatalf("request %d sent %s, answered %s: event %d received_at %s", req, a.before, a.after, n, sl.ReceivedAt)
			}
			at = sl.ReceivedAt
		}
		var r receipts.Receipt
		if status := getReceipt(t, client, gw+a.batchID, "key-a", &r); status != http.StatusOK {
			t.Fatalf("request %d: receipt of %s: status %d", req, a.batchID, status)
		}
		if r.BatchID != a.batchID || r.Status != receipts.StatusLanded || r.Events != a.events || len(r.Objects) == 0 || r.Objects[0].Events != a.events {
			t.Fatalf("request %d: receipt %+v", req, r)
		}
	}
	var coalesced string
	for _, a := range accepted {
		if _, _, ok := envelope.SplitBatchID(a.batchID); ok {
			coalesced = a.batchID
			break
		}
	}
	out, err := exec.CommandContext(t.Context(), devtest.Binary(t, sluicePkg), "receipt", coalesced, "--nats-url", st.nats.URL()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "batch "+coalesced+" of tenant acme: landed") {
		t.Errorf("sluice receipt %s: %v\n%s", coalesced, err, out)
	}

	// A coalesced message whose body holds fewer events than its requests
	// count: both requests' receipts say dead_lettered.
	bad := envelope.Coalesce("acme", []envelope.Request{{Events: 1, ReceivedAt: time.Now()}, {Events: 2, ReceivedAt: time.Now()}})
	m := nats.NewMsg(stream.EventsSubject("acme"))
	bad.SetHeaders(m.Header)
	m.Data = []byte("{\"a\":1}\n{\"b\":2}\n")
	if _, err := js.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	for i, events := range []int{1, 2} {
		id := envelope.RequestBatchID(bad.BatchID, i)
		var r receipts.Receipt
		devtest.Eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
			return getReceipt(t, client, gw+id, "key-a", &r) == http.StatusOK
		}, "no receipt for "+id)
		if r.Status != receipts.StatusDeadLettered || r.Events != events || !strings.Contains(r.Error, "undecodable body") ||
			!strings.Contains(r.Error, "header "+stream.HeaderRequests+" says 3") {
			t.Errorf("%s: %+v", id, r)
		}
	}
}
