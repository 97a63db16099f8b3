package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/limiter/redistest"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/ledger"
	"github.com/sluice-ingest/sluice/pkg/receipts"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// The soak's settings (the workers'); see TestChaosSoak.
const (
	soakAckWait     = 5 * time.Second
	soakBatchMaxAge = 2 * time.Second
	soakDrain       = soakAckWait + 15*time.Second // after the last restart, the stream must be empty
)

// soakKinds are the kinds of process the schedule kills.
var soakKinds = []string{"gateway", "worker", "nats", "redis", "s3"}

// soakSettings reads SLUICE_SOAK_SEED (replays a run's schedule; default:
// the clock), SLUICE_SOAK_FAULTS (how long the faults go on; default 60s)
// and SLUICE_SOAK_KINDS (the kinds of process killed, comma-separated;
// default all of soakKinds), which narrows down which fault leads to a
// failure.
func soakSettings(t *testing.T) (seed int64, faults time.Duration, kinds []string) {
	t.Helper()
	seed, faults, kinds = time.Now().UnixNano(), 60*time.Second, soakKinds
	if v := os.Getenv("SLUICE_SOAK_KINDS"); v != "" {
		kinds = strings.Split(v, ",")
		for _, k := range kinds {
			if !slices.Contains(soakKinds, k) {
				t.Fatalf("SLUICE_SOAK_KINDS=%q: %q is not one of %v", v, k, soakKinds)
			}
		}
	}
	if v := os.Getenv("SLUICE_SOAK_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseInt(v, 10, 64); err != nil {
			t.Fatalf("SLUICE_SOAK_SEED=%q: %v", v, err)
		}
	}
	if v := os.Getenv("SLUICE_SOAK_FAULTS"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > 10*time.Minute {
			t.Fatalf("SLUICE_SOAK_FAULTS=%q: want a duration up to 10m", v)
		}
		faults = d
	}
	return seed, faults, kinds
}

// TestChaosSoak runs a whole cluster of real processes on loopback — three
// nats-server nodes with the stream at R3, two gateways, three workers, one
// redis-server (the rate limiter on), one versitygw — under two clients
// (one retrying with an Idempotency-Key until 202, one sending once), and
// kills one process with SIGKILL every 2–4 s for SLUICE_SOAK_FAULTS,
// restarting it 1–2 s later on the same ports and files (faultSchedule).
// Then:
//   - the events stream is empty within SLUICE_ACK_WAIT + 15s of the last
//     restart;
//   - every event answered 202 is in S3;
//   - every receipt of a 202 says landed and names objects that exist and
//     hold its events;
//   - each tenant's landed counter equals the distinct events in its
//     objects.
//
// A failure prints the consumers' state and each process's log. Every run
// logs its seed (SLUICE_SOAK_SEED=<seed> replays its kills), the kills per
// kind, each partition's longest time with deliverable messages and no
// progress, the events acknowledged and landed, and the duplicates.
func TestChaosSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos soak takes two minutes; it runs without -short")
	}
	seed, faultTime, kinds := soakSettings(t)
	t.Logf("seed %d (replay the schedule with SLUICE_SOAK_SEED=%d), %s of faults killing %v", seed, seed, faultTime, kinds)
	cl := startSoakCluster(t)
	_, js := devtest.JetStream(t, cl.nats)
	begin := time.Now().UTC()

	watchCtx, stopWatch := context.WithCancel(t.Context())
	watch := newConsumerWatch(js)
	var watching sync.WaitGroup
	watching.Go(func() { watch.run(watchCtx, 500*time.Millisecond) })
	defer func() { stopWatch(); watching.Wait() }()

	stop, giveUp := make(chan struct{}), make(chan struct{})
	keyed := &soakClient{name: "keyed", keyed: true, gateways: cl.ingest, tenants: cl.tenants, seed: seed, base: 0}
	once := &soakClient{name: "unkeyed", gateways: cl.ingest, tenants: cl.tenants, base: 1 << 30}
	waitKeyed := keyed.run(t, 2, 40*time.Millisecond, stop, giveUp)
	waitOnce := once.run(t, 2, 40*time.Millisecond, stop, giveUp)

	sched := newFaultSchedule(seed, cl.victims(t, kinds))
	sched.run(t.Context(), faultTime, t.Logf)
	close(stop)
	lastRestart := sched.lastReady()
	giveUpTimer := time.AfterFunc(30*time.Second, func() { close(giveUp) })
	defer giveUpTimer.Stop()
	waitOnce()
	waitKeyed()
	sched.notReady(t)
	if n := keyed.given.Load(); n > 0 {
		t.Errorf("%d keyed requests never answered 202 within 30s of the last restart (last error: %v)", n, keyed.lastErr.Load())
	}

	// The events stream is empty within the bound, or the test says where
	// it is stuck.
	if drained := waitDrained(t, cl, lastRestart.Add(soakDrain)); !drained {
		t.Errorf("SLUICE_EVENTS still holds messages %s after the last restart (SLUICE_ACK_WAIT + 15s)", soakDrain)
	} else {
		t.Logf("SLUICE_EVENTS empty %s after the last restart", time.Since(lastRestart).Round(100*time.Millisecond))
	}
	stopWatch()
	watching.Wait()

	want := map[string]string{} // event id -> tenant, every one answered 202
	for _, c := range []*soakClient{keyed, once} {
		for id, tenant := range c.events() {
			want[id] = tenant
		}
	}
	got := readSoakObjects(t, cl)
	missing := checkStored(t, want, got)
	checkReceipts(t, cl, got, keyed, once)
	checkLanded(t, cl, got, begin)

	// The run's report, failed or not.
	dupIDs, dupLines := got.duplicates()
	name, longest := watch.longestStall()
	t.Logf("%s", sched.perKind())
	t.Logf("%s", watch.summary())
	t.Logf("longest time any partition had deliverable messages without progress: %s (%s)", longest.Round(100*time.Millisecond), name)
	for _, c := range []*soakClient{keyed, once} {
		t.Logf("client %s: %d requests answered 202, %d attempts; %d not answered 202: %s", c.name, len(c.accepted), c.sent.Load(), c.failed.Load(), c.failures())
	}
	t.Logf("events acknowledged (202): %d; landed (of those, in S3): %d; stored events %d in %d objects; duplicates: %d events stored more than once (%d extra lines)",
		len(want), len(want)-missing, len(got.count), len(got.objects), dupIDs, dupLines)
	if t.Failed() {
		t.Logf("consumers now:\n%s", consumerReport(context.Background(), js))
		cl.logDigest(t)
		cl.dumpWorkers(t)
	}
}

// soakCluster is the soak's processes.
type soakCluster struct {
	nats     *devstack.NATSCluster
	s3       *devstack.S3
	redis    *redistest.Server
	gateways []*soakProc
	workers  []*soakProc
	ingest   []string // the gateways' /v1/events URLs
	tenants  []string
}

// soakProc is a gateway or worker and its readiness URL.
type soakProc struct {
	*devtest.Proc
	ready string
}

func startSoakCluster(t *testing.T) *soakCluster {
	t.Helper()
	cl := &soakCluster{
		nats:  devtest.NATSCluster(t, 3),
		s3:    devtest.S3(t),
		redis: redistest.Start(t),
	}
	var keys strings.Builder
	for i := range 12 {
		tenant := fmt.Sprintf("t%02d", i)
		cl.tenants = append(cl.tenants, tenant)
		fmt.Fprintf(&keys, "key-%s %s\n", tenant, tenant)
	}
	keysFile := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keysFile, []byte(keys.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	both := map[string]string{
		"SLUICE_NATS_URL":        cl.nats.URL(),
		"SLUICE_STREAM_REPLICAS": "3",
	}
	gwBin, wkBin := devtest.Binary(t, gatewayPkg), devtest.Binary(t, workerPkg)
	start := func(name, bin string, env map[string]string) *soakProc {
		admin := devtest.Addr(t)
		e := maps(both)
		for k, v := range env {
			e[k] = v
		}
		e["SLUICE_ADMIN_ADDR"] = admin
		return &soakProc{Proc: devtest.Start(t, name, bin, e), ready: "http://" + admin + "/readyz"}
	}
	for i := range 2 {
		httpAddr := devtest.Addr(t)
		cl.gateways = append(cl.gateways, start(fmt.Sprintf("gateway-%d", i+1), gwBin, map[string]string{
			"SLUICE_HTTP_ADDR":     httpAddr,
			"SLUICE_API_KEYS_FILE": keysFile,
			"SLUICE_REDIS_URL":     cl.redis.URL(),
			"SLUICE_RATE_LIMIT":    "100000/s,burst=100000", // decided by Redis, never refused
		}))
		cl.ingest = append(cl.ingest, "http://"+httpAddr+"/v1/events")
	}
	for i := range 3 {
		cl.workers = append(cl.workers, start(fmt.Sprintf("worker-%d", i+1), wkBin, map[string]string{
			"SLUICE_S3_ENDPOINT":    cl.s3.Endpoint(),
			"SLUICE_S3_PATH_STYLE":  "true",
			"SLUICE_S3_BUCKET":      devstack.S3Bucket,
			"SLUICE_S3_PREFIX":      "raw",
			"SLUICE_ACK_WAIT":       soakAckWait.String(),
			"SLUICE_BATCH_MAX_AGE":  soakBatchMaxAge.String(),
			"AWS_ACCESS_KEY_ID":     devstack.S3AccessKey,
			"AWS_SECRET_ACCESS_KEY": devstack.S3SecretKey,
			"AWS_REGION":            devstack.S3Region,
		}))
	}
	for _, p := range cl.procs() {
		devtest.WaitReady(t, p.Proc, p.ready)
	}
	return cl
}

func (cl *soakCluster) procs() []*soakProc { return append(slices.Clone(cl.gateways), cl.workers...) }

// victims are the processes of kinds the schedule may kill.
func (cl *soakCluster) victims(t *testing.T, kinds []string) []*victim {
	var out []*victim
	for _, p := range cl.procs() {
		kind, _, _ := strings.Cut(p.Name, "-")
		out = append(out, &victim{kind: kind, name: p.Name, kill: p.Kill, restart: func(ctx context.Context) error {
			p.Restart(t)
			return devtest.Ready(ctx, p.Proc, p.ready)
		}})
	}
	for _, n := range cl.nats.Nodes() {
		out = append(out, &victim{kind: "nats", name: "nats-" + n.Name, kill: n.Kill, restart: func(ctx context.Context) error {
			return n.Restart(ctx, time.Minute)
		}})
	}
	out = append(out,
		&victim{kind: "redis", name: "redis", kill: cl.redis.Kill, restart: cl.redis.Restart},
		&victim{kind: "s3", name: "s3", kill: cl.s3.Kill, restart: cl.s3.Restart})
	return slices.DeleteFunc(out, func(v *victim) bool { return !slices.Contains(kinds, v.kind) })
}

// waitDrained polls the events stream until it holds no message (true) or
// deadline passes.
func waitDrained(t *testing.T, cl *soakCluster, deadline time.Time) bool {
	_, js := devtest.JetStream(t, cl.nats)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		st, err := js.Stream(ctx, stream.EventsStream)
		if err == nil {
			info, err := st.Info(ctx)
			if err == nil && info.State.Msgs == 0 {
				cancel()
				return true
			}
		}
		cancel()
		if time.Now().After(deadline) {
			return false
		}
		wait(t.Context(), 250*time.Millisecond) // polling a condition with a deadline
	}
}

// soakObjects is what S3 holds: how many times each event id is stored,
// each id's tenant, and each object's ids.
type soakObjects struct {
	count   map[string]int
	tenant  map[string]string
	objects map[string]map[string]bool
}

func readSoakObjects(t *testing.T, cl *soakCluster) soakObjects {
	t.Helper()
	got := soakObjects{count: map[string]int{}, tenant: map[string]string{}, objects: map[string]map[string]bool{}}
	for _, o := range devtest.MustReadObjects(t, cl.s3.Client(), devstack.S3Bucket, "raw/") {
		ids := map[string]bool{}
		for _, line := range o.Lines {
			var sl storedLine
			if err := json.Unmarshal([]byte(line), &sl); err != nil {
				t.Fatalf("object %s: line %q: %v", o.Key, line, err)
			}
			ids[sl.ID] = true
			got.count[sl.ID]++
			got.tenant[sl.ID] = sl.Tenant
		}
		got.objects[o.Key] = ids
	}
	return got
}

// duplicates counts the events stored more than once, and their extra
// lines.
func (g soakObjects) duplicates() (ids, lines int) {
	for _, n := range g.count {
		if n > 1 {
			ids++
			lines += n - 1
		}
	}
	return ids, lines
}

// checkStored fails for every event answered 202 that is not in S3, and
// returns how many are missing.
func checkStored(t *testing.T, want map[string]string, got soakObjects) int {
	t.Helper()
	byTenant := map[string]int{}
	var examples []string
	for id, tenant := range want {
		if got.count[id] == 0 {
			byTenant[tenant]++
			if len(examples) < 5 {
				examples = append(examples, tenant+"/"+id)
			}
		}
	}
	missing := 0
	for _, n := range byTenant {
		missing += n
	}
	if missing > 0 {
		slices.Sort(examples)
		t.Errorf("%d of %d events answered 202 are not in S3; by tenant %v; e.g. %v", missing, len(want), byTenant, examples)
	}
	return missing
}

// checkReceipts asks a gateway for the receipt of every request answered
// 202: each must say landed and name objects that exist and hold the
// request's events.
func checkReceipts(t *testing.T, cl *soakCluster, got soakObjects, clients ...*soakClient) {
	t.Helper()
	type job struct {
		client string
		a      acceptedReq
	}
	jobs := make(chan job)
	var (
		mu       sync.Mutex
		bad      int
		checked  int
		examples []string
		wg       sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		bad++
		if len(examples) < 8 {
			examples = append(examples, fmt.Sprintf(format, args...))
		}
	}
	client := &http.Client{Timeout: 10 * time.Second}
	base := strings.TrimSuffix(cl.ingest[0], "/v1/events") + "/v1/receipts/"
	for range 8 {
		wg.Go(func() {
			for j := range jobs {
				var r receipts.Receipt
				status := getReceipt(t, client, base+j.a.batchID, "key-"+j.a.tenant, &r)
				mu.Lock()
				checked++
				mu.Unlock()
				if status != http.StatusOK {
					fail("%s %s/%s: receipt status %d", j.client, j.a.tenant, j.a.batchID, status)
					continue
				}
				if r.Status != receipts.StatusLanded || len(r.Objects) == 0 {
					fail("%s %s/%s: receipt %+v", j.client, j.a.tenant, j.a.batchID, r)
					continue
				}
				for _, o := range r.Objects {
					ids, ok := got.objects[o.Key]
					if !ok {
						fail("%s %s/%s: receipt names %s, which is not in S3", j.client, j.a.tenant, j.a.batchID, o.Key)
						continue
					}
					for n := range j.a.events {
						if id := fmt.Sprintf("%s-%d", j.a.batchID, n); !ids[id] {
							fail("%s %s/%s: receipt names %s, which lacks event %s", j.client, j.a.tenant, j.a.batchID, o.Key, id)
							break
						}
					}
				}
			}
		})
	}
	total := 0
	for _, c := range clients {
		c.mu.Lock()
		accepted := slices.Collect(func(yield func(acceptedReq) bool) {
			for _, a := range c.accepted {
				if !yield(a) {
					return
				}
			}
		})
		c.mu.Unlock()
		for _, a := range accepted {
			total++
			jobs <- job{c.name, a}
		}
	}
	close(jobs)
	wg.Wait()
	if bad > 0 {
		t.Errorf("%d of %d receipts of requests answered 202 are not landed in objects that hold them; e.g.\n  %s",
			bad, total, strings.Join(examples, "\n  "))
	}
}

// checkLanded compares each tenant's landed counter, over the hours of the
// run, with the distinct events S3 holds for it.
func checkLanded(t *testing.T, cl *soakCluster, got soakObjects, begin time.Time) {
	t.Helper()
	stored := map[string]int64{}
	for _, tenant := range got.tenant {
		stored[tenant]++
	}
	_, js := devtest.JetStream(t, cl.nats)
	for _, tenant := range cl.tenants {
		hours, err := ledger.Read(t.Context(), js, tenant, begin.Add(-time.Hour), time.Now())
		if err != nil {
			t.Errorf("landed counter of %s: %v", tenant, err)
			continue
		}
		var landed int64
		for _, h := range hours {
			landed += h.Landed
		}
		if landed != stored[tenant] {
			t.Errorf("tenant %s: landed counter %d, distinct events in its objects %d", tenant, landed, stored[tenant])
		}
	}
}

// number is a run of digits, replaced to group log lines that differ only
// in sequences, ports and times.
var number = regexp.MustCompile(`[0-9]+`)

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// logDigest prints, for each gateway and worker, its warnings and errors
// counted by message and error, and the tail of its log (the whole log
// follows at cleanup); for each NATS node, its warnings and errors.
func (cl *soakCluster) logDigest(t *testing.T) {
	for _, p := range cl.procs() {
		counts := map[string]int{}
		for line := range strings.SplitSeq(p.Output(), "\n") {
			var l struct {
				Level, Msg, Err, Consumer string
			}
			if json.Unmarshal([]byte(line), &l) != nil || (l.Level != "WARN" && l.Level != "ERROR") {
				continue
			}
			k := l.Level + " " + number.ReplaceAllString(l.Msg, "#")
			if l.Consumer != "" {
				k += " consumer=" + l.Consumer
			}
			if l.Err != "" {
				k += " err=" + number.ReplaceAllString(l.Err, "#")
			}
			counts[truncate(k, 240)]++
		}
		t.Logf("--- %s: warnings and errors by message:\n%s--- partitions taken and handed over:\n%s--- last lines:\n%s",
			p.Name, countLines(counts), ownership(p.Output()), devtest.Tail(p.Output(), 15))
	}
	for _, n := range cl.nats.Nodes() {
		counts := map[string]int{}
		for line := range strings.SplitSeq(n.Log(), "\n") {
			for _, level := range []string{"[WRN] ", "[ERR] "} {
				if _, msg, ok := strings.Cut(line, level); ok {
					counts[truncate(level+number.ReplaceAllString(msg, "#"), 240)]++
				}
			}
		}
		t.Logf("--- nats node %s: warnings and errors by message:\n%s", n.Name, countLines(counts))
	}
}

// countLines prints counted lines sorted, one a line.
func countLines(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %5d× %s\n", counts[k], k)
	}
	return b.String()
}

// ownership is a worker log's partition changes, one a line: when it
// started reading or handing over which consumer, and the members it saw.
func ownership(log string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(log, "\n") {
		var l struct {
			Time     time.Time
			Msg      string
			Consumer string
			Members  int
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Consumer == "" || !strings.Contains(l.Msg, "partition") {
			continue
		}
		fmt.Fprintf(&b, "  %s %s %s (members %d)\n", l.Time.Format("15:04:05.000"), l.Msg, l.Consumer, l.Members)
	}
	return b.String()
}

// dumpWorkers logs each worker's budget, writability and stall metrics,
// then has it print its goroutines (SIGQUIT): what a partition nobody
// pulls is waiting on. The dumps are in the whole logs at cleanup.
func (cl *soakCluster) dumpWorkers(t *testing.T) {
	for _, w := range cl.workers {
		var lines []string
		if body, err := page(strings.TrimSuffix(w.ready, "/readyz") + "/metrics"); err != nil {
			lines = append(lines, err.Error())
		} else {
			for l := range strings.SplitSeq(body, "\n") {
				if strings.HasPrefix(l, "sluice_worker_") && (strings.Contains(l, "inflight") || strings.Contains(l, "writable") ||
					strings.Contains(l, "stalls") || strings.Contains(l, "batch_age")) {
					lines = append(lines, l)
				}
			}
		}
		t.Logf("--- %s metrics:\n  %s", w.Name, strings.Join(lines, "\n  "))
		w.Signal(syscall.SIGQUIT)
	}
}
