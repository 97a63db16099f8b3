package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/ledger"
	"github.com/sluice-ingest/sluice/pkg/receipts"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

const sluicePkg = "github.com/sluice-ingest/sluice/pkg/cmd/sluice"

// TestReceiptsAndCountsSurviveAKilledWorker runs load through the real
// gateway while the real worker is killed with SIGKILL and another one
// takes over, with a poison message in the stream. Then every accepted
// batch has its receipt, landed, served by the gateway, naming objects that
// exist and hold its events; the poison's receipt is dead_lettered; and the
// counters say accepted = landed + dead exactly, each the sum of what was
// answered 202, stored and dead-lettered.
func TestReceiptsAndCountsSurviveAKilledWorker(t *testing.T) {
	st := startStack(t, "key-a acme\nkey-b beta\n", map[string]string{
		"SLUICE_BATCH_MAX_AGE":   "1s",
		"SLUICE_BATCH_MAX_BYTES": "32KiB",
		"SLUICE_ACK_WAIT":        "3s",
		"SLUICE_WORKERS":         "2",
	})
	start := time.Now().UTC()
	stop := make(chan struct{})
	l, wait := killUnderLoad(t, st, 1200, stop)

	// The gateway never publishes a message the worker refuses, so the test
	// publishes one as a gateway would: the message, and its events counted
	// accepted. A message without metadata, which no gateway accepted, is
	// neither counted nor given a receipt.
	_, js := devtest.JetStream(t, st.nats)
	poison := envelope.Meta{Tenant: "acme", BatchID: envelope.NewBatchID(), ReceivedAt: time.Now().UTC(), EventCount: 3}
	bad := nats.NewMsg(stream.EventsSubject("acme"))
	poison.SetHeaders(bad.Header)
	bad.Data = []byte("{\"a\":1}\n{\"b\":2}\n") // 2 lines; its header says 3
	headerless := nats.NewMsg(stream.EventsSubject("acme"))
	headerless.Data = []byte(`{"c":3}`)
	for _, m := range []*nats.Msg{bad, headerless} {
		if _, err := js.PublishMsg(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := ledger.Add(t.Context(), js, ledger.Accepted, "acme", poison.ReceivedAt, 3, ""); err != nil {
		t.Fatal(err)
	}

	startWorker2(t, st)
	wait()
	close(stop)
	if n := l.errs.Load(); n > 0 {
		t.Fatalf("%d requests refused: their events may be stored without being counted accepted", n)
	}
	accepted := 0
	for _, a := range l.accepted {
		accepted += a.events
	}

	// Settled: nothing left in the stream, the poison dead-lettered.
	devtest.Eventually(t, 90*time.Second, 250*time.Millisecond, func() bool {
		s, err := js.Stream(t.Context(), stream.EventsStream)
		return err == nil && s.CachedInfo().State.Msgs == 0
	}, "stream not drained")

	count, _, _ := readLines(t, st)
	objects := map[string]map[string]bool{} // key -> ids
	for _, o := range devtest.MustReadObjects(t, st.s3.Client(), devstack.S3Bucket, "raw/") {
		objects[o.Key] = map[string]bool{}
		for _, line := range o.Lines {
			var sl storedLine
			_ = json.Unmarshal([]byte(line), &sl)
			objects[o.Key][sl.ID] = true
		}
	}
	gw := strings.TrimSuffix(st.ingest, "/v1/events") + "/v1/receipts/"
	client := &http.Client{Timeout: 10 * time.Second}
	for req, a := range l.accepted {
		var r receipts.Receipt
		if status := getReceipt(t, client, gw+a.batchID, "key-a", &r); status != http.StatusOK {
			t.Fatalf("request %d: receipt of %s: status %d", req, a.batchID, status)
		}
		if r.Status != receipts.StatusLanded || r.Events != a.events || len(r.Objects) == 0 || r.LandedAt == nil {
			t.Fatalf("request %d: receipt %+v", req, r)
		}
		for _, o := range r.Objects {
			ids, ok := objects[o.Key]
			if !ok || o.Events != a.events {
				t.Fatalf("request %d: receipt names %+v, not a stored object", req, o)
			}
			for n := range a.events {
				if id := fmt.Sprintf("%s-%d", a.batchID, n); !ids[id] || count[id] == 0 {
					t.Fatalf("request %d: object %s lacks event %s", req, o.Key, id)
				}
			}
		}
		if status := getReceipt(t, client, gw+a.batchID, "key-b", nil); status != http.StatusNotFound {
			t.Fatalf("another tenant's receipt: status %d", status)
		}
	}
	var r receipts.Receipt
	if status := getReceipt(t, client, gw+poison.BatchID, "key-a", &r); status != http.StatusOK || r.Status != receipts.StatusDeadLettered ||
		!strings.Contains(r.Error, "undecodable body") || r.Events != 3 {
		t.Errorf("poison: %d %+v", status, r)
	}

	// accepted = landed + dead, each exactly what was answered 202, stored
	// and dead-lettered, once the gateway's count is flushed (every second).
	var sum ledger.Counts
	devtest.Eventually(t, 10*time.Second, 100*time.Millisecond, func() bool {
		hours, err := ledger.Read(t.Context(), js, "acme", start, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		sum = ledger.Counts{}
		for _, h := range hours {
			sum.Accepted += h.Accepted
			sum.Landed += h.Landed
			sum.Dead += h.Dead
		}
		return sum.Accepted == int64(accepted+3)
	}, fmt.Sprintf("accepted never reached %d", accepted+3))
	if sum.Landed != int64(accepted) || sum.Dead != 3 || sum.Accepted != sum.Landed+sum.Dead {
		t.Errorf("counts %+v: want accepted %d = landed %d + dead 3", sum, accepted+3, accepted)
	}
	dups := 0
	for _, n := range count {
		dups += n - 1
	}
	t.Logf("%d requests, %d events accepted; %d duplicate lines in S3; counts %+v", len(l.accepted), accepted, dups, sum)

	// The CLI agrees: the hours are not closed yet (grace), so it exits 0.
	out, err := exec.CommandContext(t.Context(), devtest.Binary(t, sluicePkg), "reconcile", "--tenant", "acme",
		"--from", start.Format("2006-01-02T15"), "--nats-url", st.nats.URL()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf(" %d ", accepted+3)) {
		t.Errorf("sluice reconcile: %v\n%s", err, out)
	}
	t.Logf("sluice reconcile:\n%s", out)
}

// getReceipt GETs a receipt with key and decodes a 200 into r.
func getReceipt(t *testing.T, c *http.Client, url, key string, r *receipts.Receipt) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && r != nil {
		if err := json.Unmarshal(b, r); err != nil {
			t.Fatalf("receipt %s: %v", b, err)
		}
	}
	return resp.StatusCode
}
