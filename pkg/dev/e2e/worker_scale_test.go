package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/objkey"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// scaleBatchAge is the workers' SLUICE_BATCH_MAX_AGE in the scaling test.
const scaleBatchAge = 2 * time.Second

// TestScaleOutAndIn runs 1, then 4, then 2 real worker binaries under a
// steady load of 8 tenants (one of the four is killed with SIGKILL, one
// stopped with SIGTERM) and checks, from the stored objects and the
// workers' logs of the objects they stored:
//   - every event whose publish was acknowledged is stored, and the
//     events stream ends empty (no acked message left in it);
//   - each tenant's objects, in sequence order, change writer only at a
//     handover of its partition, and their sequence ranges overlap only
//     where the killed worker's messages came back: one worker at a time
//     consumed each partition;
//   - each tenant-hour has about one worker's object count (load time /
//     batch age), plus one per handover, whatever the replica count;
//   - duplicate lines are counted.
func TestScaleOutAndIn(t *testing.T) {
	n, s3srv := devtest.NATS(t), devtest.S3(t)
	_, js := devtest.JetStream(t, n)
	bin := devtest.Binary(t, workerPkg)
	env := map[string]string{
		"SLUICE_NATS_URL":       n.URL(),
		"SLUICE_S3_ENDPOINT":    s3srv.Endpoint(),
		"SLUICE_S3_PATH_STYLE":  "true",
		"SLUICE_S3_BUCKET":      devstack.S3Bucket,
		"SLUICE_S3_PREFIX":      "raw",
		"SLUICE_PARTITIONS":     "8",
		"SLUICE_BATCH_MAX_AGE":  scaleBatchAge.String(),
		"SLUICE_ACK_WAIT":       "3s", // membership TTL and pinned TTL too
		"SLUICE_WORKERS":        "2",
		"SLUICE_LOG_LEVEL":      "debug", // each stored key is logged
		"AWS_ACCESS_KEY_ID":     devstack.S3AccessKey,
		"AWS_SECRET_ACCESS_KEY": devstack.S3SecretKey,
		"AWS_REGION":            devstack.S3Region,
	}
	workers := map[string]*devtest.Proc{}
	start := func(name string) {
		e := maps(env)
		admin := devtest.Addr(t)
		e["SLUICE_ADMIN_ADDR"] = admin
		p := devtest.Start(t, name, bin, e)
		devtest.WaitReady(t, p, "http://"+admin+"/readyz")
		workers[name] = p
	}

	start("w1")
	pub := publishLoad(t, js, 8)
	time.Sleep(4 * time.Second)
	for _, w := range []string{"w2", "w3", "w4"} {
		start(w)
	}
	time.Sleep(7 * time.Second)
	if held := ackPending(t, js); held == 0 {
		t.Fatal("no message held by any worker: the kill would prove nothing")
	}
	workers["w2"].Kill()
	if err := workers["w3"].Stop(20 * time.Second); err != nil {
		t.Errorf("w3 did not stop cleanly: %v", err)
	}
	time.Sleep(7 * time.Second)
	loadTime, accepted := pub.stop()

	want := map[string]bool{}
	for _, ids := range accepted {
		for _, id := range ids {
			want[id] = true
		}
	}
	var objs []devtest.Object
	devtest.Eventually(t, 60*time.Second, 250*time.Millisecond, func() bool {
		objs = devtest.MustReadObjects(t, s3srv.Client(), devstack.S3Bucket, "raw/")
		seen := map[string]bool{}
		for _, o := range objs {
			for _, l := range o.Lines {
				var sl storedLine
				if err := json.Unmarshal([]byte(l), &sl); err == nil {
					seen[sl.ID] = true
				}
			}
		}
		for id := range want {
			if !seen[id] {
				return false
			}
		}
		return true
	}, fmt.Sprintf("not every one of %d acknowledged events reached S3", len(want)))
	// Nothing acked stays in the work-queue stream, and nothing is left
	// undelivered: every partition of the killed worker was served again.
	devtest.Eventually(t, 30*time.Second, 250*time.Millisecond, func() bool {
		st, err := js.Stream(t.Context(), stream.EventsStream)
		if err != nil {
			return false
		}
		info, err := st.Info(t.Context())
		return err == nil && info.State.Msgs == 0
	}, "messages left in the events stream after every event reached S3")
	for _, w := range []string{"w1", "w4"} {
		if err := workers[w].Stop(20 * time.Second); err != nil {
			t.Errorf("%s did not stop cleanly: %v", w, err)
		}
	}

	// From the workers' logs: who stored each key first, and how many
	// times each partition's consumer was taken by a worker.
	writer := map[string]string{}
	owners := map[string]int{}
	for _, name := range []string{"w1", "w2", "w3", "w4"} {
		for _, line := range strings.Split(workers[name].Output(), "\n") {
			var l struct {
				Msg      string `json:"msg"`
				Key      string `json:"key"`
				Consumer string `json:"consumer"`
			}
			if json.Unmarshal([]byte(line), &l) != nil {
				continue
			}
			switch {
			case l.Msg == "object stored" && writer[l.Key] == "":
				writer[l.Key] = name
			case l.Msg == "reading partition":
				owners[l.Consumer]++
			}
		}
	}
	handovers := 0 // the most times a partition changed owner
	for _, n := range owners {
		handovers = max(handovers, n-1)
	}
	if handovers == 0 {
		t.Error("no partition changed owner: the workers did not rebalance")
	}

	count := map[string]int{}
	byTenantHour := map[string][]objkey.Key{}
	for _, o := range objs {
		k, err := objkey.Parse(o.Key)
		if err != nil {
			t.Fatalf("key %s: %v", o.Key, err)
		}
		th := k.Tenant + "/" + k.Hour.Format("2006-01-02T15")
		byTenantHour[th] = append(byTenantHour[th], k)
		for _, l := range o.Lines {
			var sl storedLine
			if err := json.Unmarshal([]byte(l), &sl); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			count[sl.ID]++
		}
	}
	dups := 0
	for id, c := range count {
		if !want[id] {
			t.Errorf("stored event %s was never acknowledged", id)
		}
		dups += c - 1
	}

	// One worker's objects per tenant-hour: one per batch age of load,
	// one more where the load started and stopped inside a batch, and
	// one per handover of the tenant's partition. The writer changes only
	// at a handover (one more where the writer of an object is not in the
	// logs: the killed worker stored it and died before logging).
	oneWorker := int(loadTime/scaleBatchAge) + 2
	for th, keys := range byTenantHour {
		slices.SortFunc(keys, func(a, b objkey.Key) int { return int(a.FirstSeq) - int(b.FirstSeq) })
		switches, overlaps, last := 0, 0, ""
		var maxLast uint64
		for i, k := range keys {
			w := writer[k.String()]
			if w != "" && last != "" && w != last {
				switches++
			}
			if w != "" {
				last = w
			}
			if i > 0 && k.FirstSeq <= maxLast {
				overlaps++
			}
			maxLast = max(maxLast, k.LastSeq)
		}
		t.Logf("%s: %d objects (one worker: %d, handovers: up to %d), %d writer changes, %d overlapping ranges",
			th, len(keys), oneWorker, handovers, switches, overlaps)
		if switches > handovers+1 {
			t.Errorf("%s: the writer changed %d times along the sequence: more than one worker consumed its partition at once", th, switches)
		}
		if overlaps > 1 { // the killed worker's unstored messages, batched with newer ones
			t.Errorf("%s: %d objects overlap earlier ones' sequence ranges", th, overlaps)
		}
		if len(keys) > oneWorker+handovers+1 {
			t.Errorf("%s: %d objects, one worker makes about %d (+%d handovers)", th, len(keys), oneWorker, handovers)
		}
	}
	t.Logf("%d events acknowledged in %s, %d objects, %d duplicate lines", len(want), loadTime.Round(time.Millisecond), len(objs), dups)
	if dups > 0 {
		t.Errorf("%d duplicate lines (same id stored twice)", dups)
	}
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ackPending is the messages delivered to workers and not yet acked, over
// every consumer of the events stream.
func ackPending(t *testing.T, js jetstream.JetStream) int {
	_, held := consumerCounts(t, js)
	return held
}

// consumerCounts sums, over every consumer of the events stream (one per
// partition and the unpartitioned one), the messages not yet delivered and
// those delivered and not yet acked.
func consumerCounts(t *testing.T, js jetstream.JetStream) (pending, ackPending int) {
	t.Helper()
	st, err := js.Stream(t.Context(), stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	l := st.ListConsumers(t.Context())
	for info := range l.Info() {
		pending += int(info.NumPending)
		ackPending += info.NumAckPending
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	return pending, ackPending
}

// scaleLoad publishes a message of 1 to 3 events every few milliseconds,
// round robin over the tenants, and records the event ids of every publish
// the stream acknowledged.
type scaleLoad struct {
	quit     chan struct{}
	done     sync.WaitGroup
	began    time.Time
	mu       sync.Mutex
	accepted map[string][]string
	sent     atomic.Int64
}

func publishLoad(t *testing.T, js jetstream.JetStream, tenants int) *scaleLoad {
	l := &scaleLoad{quit: make(chan struct{}), began: time.Now(), accepted: map[string][]string{}}
	l.done.Go(func() {
		tick := time.NewTicker(4 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.quit:
				return
			case <-tick.C:
			}
			tenant := "t" + strconv.Itoa(i%tenants)
			events := 1 + i%3
			meta := envelope.Meta{Tenant: tenant, BatchID: envelope.NewBatchID(), ReceivedAt: time.Now().UTC(), EventCount: events}
			msg := nats.NewMsg(stream.EventsSubject(tenant))
			meta.SetHeaders(msg.Header)
			for e := range events {
				msg.Data = fmt.Appendf(msg.Data, `{"i":%d,"e":%d}`+"\n", i, e)
			}
			if _, err := js.PublishMsg(t.Context(), msg); err != nil {
				continue // not acknowledged: not owed
			}
			l.sent.Add(1)
			l.mu.Lock()
			for e := range events {
				l.accepted[tenant] = append(l.accepted[tenant], fmt.Sprintf("%s-%d", meta.BatchID, e))
			}
			l.mu.Unlock()
		}
	})
	return l
}

// stop ends the load and returns how long it ran and the acknowledged
// event ids by tenant.
func (l *scaleLoad) stop() (time.Duration, map[string][]string) {
	close(l.quit)
	l.done.Wait()
	return time.Since(l.began), l.accepted
}
