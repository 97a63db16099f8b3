package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// load posts requests from a few clients until stop is closed or max
// requests were sent, and records what was accepted. before is set for a
// request that started before the kill.
type load struct {
	mu       sync.Mutex
	accepted map[int]acceptedReq
	started  map[int]bool // started before killed was set
	killed   atomic.Bool
	errs     atomic.Int64
}

func runLoad(t *testing.T, url, key, tenant string, max int, stop <-chan struct{}) (*load, func()) {
	l := &load{accepted: map[int]acceptedReq{}, started: map[int]bool{}}
	var next atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range 4 {
		wg.Go(func() {
			for {
				req := int(next.Add(1))
				if req > max {
					return
				}
				select {
				case <-stop:
					return
				default:
				}
				before := !l.killed.Load()
				a, err := post(t, client, url, key, req, 1+req%20)
				if err != nil {
					l.errs.Add(1) // not accepted: not owed
					continue
				}
				a.tenant = tenant
				l.mu.Lock()
				l.accepted[req] = a
				l.started[req] = before
				l.mu.Unlock()
			}
		})
	}
	return l, wg.Wait
}

// readLines reads every stored line and counts them by id, keeping each
// id's line to compare duplicates.
func readLines(t *testing.T, st *stack) (count map[string]int, line map[string]string, reqOf map[string]int) {
	t.Helper()
	count, line, reqOf = map[string]int{}, map[string]string{}, map[string]int{}
	for _, o := range devtest.MustReadObjects(t, st.s3.Client(), devstack.S3Bucket, "raw/") {
		for _, l := range o.Lines {
			var sl storedLine
			if err := json.Unmarshal([]byte(l), &sl); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			if prev, ok := line[sl.ID]; ok && prev != l {
				t.Errorf("id %s stored with two different lines:\n%s\n%s", sl.ID, prev, l)
			}
			count[sl.ID]++
			line[sl.ID] = l
			reqOf[sl.ID] = sl.Data.Req
		}
	}
	return count, line, reqOf
}

// killUnderLoad starts load of max requests for tenant acme (key-a),
// waits until the worker stored a few objects and kills it with SIGKILL.
func killUnderLoad(t *testing.T, st *stack, max int, stop <-chan struct{}) (*load, func()) {
	t.Helper()
	l, wait := runLoad(t, st.ingest, "key-a", "acme", max, stop)
	devtest.Eventually(t, 60*time.Second, 20*time.Millisecond, func() bool {
		return len(devtest.MustReadObjects(t, st.s3.Client(), devstack.S3Bucket, "raw/")) >= 3
	}, "worker stored nothing under load")
	l.killed.Store(true)
	st.worker.Kill()
	return l, wait
}

// startWorker2 starts another worker with the stack's settings and waits
// until it is ready.
func startWorker2(t *testing.T, st *stack) {
	t.Helper()
	env := map[string]string{}
	for k, v := range st.workerEnv {
		env[k] = v
	}
	admin := devtest.Addr(t)
	env["SLUICE_ADMIN_ADDR"] = admin
	w2 := devtest.Start(t, "worker-2", devtest.Binary(t, workerPkg), env)
	devtest.WaitReady(t, w2, "http://"+admin+"/readyz")
}

// TestWorkerKilledMidBatch kills the real worker with SIGKILL while it holds
// open batches and uploads under load, starts a new one, and checks that
// every accepted event is in S3, and that the only duplicates are events of
// requests the killed worker could have held, stored with identical lines.
func TestWorkerKilledMidBatch(t *testing.T) {
	st := startStack(t, "key-a acme\n", map[string]string{
		"SLUICE_BATCH_MAX_AGE":   "1s",
		"SLUICE_BATCH_MAX_BYTES": "32KiB",
		"SLUICE_ACK_WAIT":        "3s", // the killed worker's messages come back after 3s
		"SLUICE_WORKERS":         "2",
	})
	stop := make(chan struct{})
	l, wait := killUnderLoad(t, st, 1500, stop)
	_, js := devtest.JetStream(t, st.nats)
	held := ackPending(t, js)
	if held == 0 {
		t.Fatal("the killed worker held no message: not killed mid-batch")
	}
	t.Logf("worker killed holding %d messages", held)

	startWorker2(t, st)
	wait()
	close(stop)

	want := map[string]int{} // id -> request
	for req, a := range l.accepted {
		for n := range a.events {
			want[fmt.Sprintf("%s-%d", a.batchID, n)] = req
		}
	}
	var count map[string]int
	var line map[string]string
	var reqOf map[string]int
	devtest.Eventually(t, 90*time.Second, 250*time.Millisecond, func() bool {
		count, line, reqOf = readLines(t, st)
		for id := range want {
			if count[id] == 0 {
				return false
			}
		}
		return true
	}, fmt.Sprintf("not every one of %d accepted events reached S3", len(want)))

	dups := 0
	for id, n := range count {
		if _, ok := want[id]; !ok {
			t.Errorf("stored event %s was never accepted: %s", id, line[id])
		}
		if n > 1 {
			dups += n - 1
			if !l.started[reqOf[id]] {
				t.Errorf("event %s of request %d, sent after the kill, stored %d times", id, reqOf[id], n)
			}
		}
	}
	t.Logf("%d requests accepted (%d failed), %d events, %d duplicate lines (identical ids and lines)",
		len(l.accepted), l.errs.Load(), len(want), dups)
}

// TestWorkerS3Down stops the S3 server under the real worker: nothing is
// acknowledged while it is down, the worker's in-flight bytes stay under
// SLUICE_MAX_INFLIGHT_BYTES plus one message, and the backlog drains once S3
// is back. The outage lasts about 8 seconds rather than 30: it spans many
// upload retries and AckWait (3s) twice over, which is all a longer outage
// adds.
func TestWorkerS3Down(t *testing.T) {
	const bound = 256 << 10
	st := startStack(t, "key-a acme\n", map[string]string{
		"SLUICE_BATCH_MAX_AGE":      "300ms",
		"SLUICE_MAX_INFLIGHT_BYTES": strconv.Itoa(bound),
		"SLUICE_ACK_WAIT":           "3s",
	})
	_, js := devtest.JetStream(t, st.nats)
	streamMsgs := func() uint64 {
		s, err := js.Stream(t.Context(), stream.EventsStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	st.s3.Stop()
	down := time.Now()
	l, wait := runLoad(t, st.ingest, "key-a", "acme", 400, nil)
	wait()
	if len(l.accepted) != 400 {
		t.Fatalf("%d of 400 requests accepted", len(l.accepted))
	}
	// The gateway coalesces concurrent requests: the messages are those
	// the stream stored (it held none before).
	msgs := streamMsgs()
	metricsURL := "http://" + st.workerEnv["SLUICE_ADMIN_ADDR"] + "/metrics"
	var peak float64
	devtest.Eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		peak = max(peak, metric(t, metricsURL, "sluice_worker_inflight_bytes"))
		return time.Since(down) > 8*time.Second
	}, "unreachable")
	devtest.Eventually(t, 10*time.Second, 100*time.Millisecond, func() bool {
		return metric(t, metricsURL, "sluice_worker_consumer_pending") == float64(msgs)
	}, fmt.Sprintf("consumer lag metric does not show the %d unacknowledged messages", msgs))
	if acked := metric(t, metricsURL, `sluice_worker_messages_total{outcome="acked"}`); acked != 0 {
		t.Fatalf("%v messages acked while S3 was down", acked)
	}
	if n := streamMsgs(); n != msgs {
		t.Fatalf("stream holds %d messages while S3 is down, want all %d", n, msgs)
	}
	// The bound may be passed by one fetch of at most one NATS message.
	if limit := float64(bound + 8<<20); peak > limit || peak == 0 {
		t.Errorf("in-flight bytes peaked at %v, want between 1 and %v", peak, limit)
	}
	if err := st.s3.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	devtest.Eventually(t, 60*time.Second, 250*time.Millisecond, func() bool { return streamMsgs() == 0 }, "backlog not drained after S3 came back")
	count, _, _ := readLines(t, st)
	for req, a := range l.accepted {
		for n := range a.events {
			if id := fmt.Sprintf("%s-%d", a.batchID, n); count[id] != 1 {
				t.Errorf("event %s of request %d stored %d times", id, req, count[id])
			}
		}
	}
	t.Logf("in-flight peak %v bytes (bound %d)", peak, bound)
}

// metric reads one sample from a Prometheus text page.
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	v, ok := sample(scrape(t, url), name)
	if !ok {
		t.Fatalf("metric %s not found at %s", name, url)
	}
	return v
}

// page is the text page at url.
func page(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// sample is the value of the sample name on a Prometheus text page.
func sample(text, name string) (float64, bool) {
	for line := range strings.SplitSeq(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestWorkerDrainsOnSIGTERM: batches far from any limit are stored and
// acknowledged when the real worker gets SIGTERM, and it exits cleanly.
func TestWorkerDrainsOnSIGTERM(t *testing.T) {
	st := startStack(t, "key-a acme\n", map[string]string{
		"SLUICE_BATCH_MAX_AGE":    "1h",
		"SLUICE_SHUTDOWN_TIMEOUT": "20s",
	})
	l, wait := runLoad(t, st.ingest, "key-a", "acme", 100, nil)
	wait()
	_, js := devtest.JetStream(t, st.nats)
	// The gateway coalesces concurrent requests: the messages are those
	// the stream stored.
	s, err := js.Stream(t.Context(), stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	msgs := int(s.CachedInfo().State.LastSeq)
	devtest.Eventually(t, 20*time.Second, 20*time.Millisecond, func() bool {
		pending, held := consumerCounts(t, js)
		return pending == 0 && held == msgs
	}, fmt.Sprintf("the worker did not take every one of the %d messages into a batch", msgs))
	if objs := devtest.MustReadObjects(t, st.s3.Client(), devstack.S3Bucket, "raw/"); len(objs) != 0 {
		t.Fatalf("%d objects before SIGTERM with a one-hour batch age", len(objs))
	}
	if err := st.worker.Stop(20 * time.Second); err != nil {
		t.Fatalf("worker exit after SIGTERM: %v", err)
	}
	if pending, held := consumerCounts(t, js); pending != 0 || held != 0 {
		t.Errorf("after the drain: %d pending, %d unacknowledged", pending, held)
	}
	count, _, _ := readLines(t, st)
	for req, a := range l.accepted {
		for n := range a.events {
			if id := fmt.Sprintf("%s-%d", a.batchID, n); count[id] != 1 {
				t.Errorf("event %s of request %d stored %d times", id, req, count[id])
			}
		}
	}
}
