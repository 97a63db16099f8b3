package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-ingest/sluice/pkg/dev/loadgen"
)

// row is one line of the table.
type row struct {
	kind   string // one of allKinds
	label  string
	load   string
	events int // per request (per message for the drain)

	reqs, evs float64 // per second
	latency   bool    // p50 and p99 were measured
	p50, p99  time.Duration
	answered  int
	refused   int    // answers other than 2xx, and transport errors
	statuses  string // the refusals by status, e.g. "503: 12"

	// okTotal counts the 2xx answers of the whole row (warm-up included);
	// lost, for the seed design, is how many payloads answered 200 were not
	// stored when it stopped (at least that many: some of the stored ones
	// may belong to requests that were never answered).
	okTotal int
	lost    int64

	// rest is the CPU the rest of the machine used during the row, in cores.
	rest float64

	cpu  map[string]time.Duration // CPU per request, by procNames
	peak map[string]int64         // peak RSS, by procNames
}

// drainWithin bounds every wait for the stream to be empty.
const drainWithin = 3 * time.Minute

// runRows runs the chosen rows. The ceiling runs at every event count a
// Sluice row uses, each right before the rows it is compared with, so that
// other work on the machine drifts as little as possible between them.
func runRows(ctx context.Context, s settings, st *stack, logf func(string, ...any)) ([]row, error) {
	counts := map[int]bool{}
	if s.has("sluice") {
		for _, n := range s.events {
			counts[n] = true
		}
	}
	for kind, n := range map[string]int{"open": s.openEvents, "seed": s.seedEvents, "drain": s.drainPerMsg, "sync": s.syncEvents} {
		if s.has(kind) {
			counts[n] = true
		}
	}
	if len(counts) == 0 {
		for _, n := range s.events {
			counts[n] = true
		}
	}
	var rows []row
	do := func(r row, err error) error {
		if err != nil {
			return fmt.Errorf("row %q: %w", r.label, err)
		}
		p99 := "–"
		if r.latency {
			p99 = millis(r.p99)
		}
		logf("%-44s %9.0f req/s %10.0f events/s  p99 %s", r.label, r.reqs, r.evs, p99)
		rows = append(rows, r)
		return nil
	}
	for _, n := range slices.Sorted(maps.Keys(counts)) {
		if s.has("ceiling") {
			if err := do(st.ceilingRow(ctx, n)); err != nil {
				return nil, err
			}
		}
		if s.has("sluice") && slices.Contains(s.events, n) {
			if err := do(st.sluiceRow(ctx, "sluice", n)); err != nil {
				return nil, err
			}
		}
	}
	steps := []struct {
		kind string
		run  func(context.Context) (row, error)
	}{
		{"open", st.openRow},
		{"seed", st.seedRow},
		{"drain", st.drainRow},
		{"sync", st.syncRow},
	}
	for _, step := range steps {
		if s.has(step.kind) {
			if err := do(step.run(ctx)); err != nil {
				return nil, err
			}
		}
	}
	return rows, nil
}

// loadSpec is how one row loads its server and what it measures.
type loadSpec struct {
	target loadgen.Target
	events int
	pids   map[string]int // processes measured, by procNames
	open   bool           // constant rate (s.rate) instead of closed loop
	// drain waits for the stream to be empty before the meter stops, so the
	// worker's and S3's work for the row's requests is counted in it.
	drain bool
	// profile names the CPU profiles of the gateway, worker and nats-server
	// taken during the measured time ("" for none).
	profile string
	// stored, when set, counts events landed in S3 so far: events/s is
	// what landed during the measured time, not what was answered.
	stored func(context.Context) (int64, error)
}

func (st *stack) sluicePids() map[string]int {
	return map[string]int{"server": st.gateway.pid(), "worker": st.worker.pid(), "nats": st.nats.pid(),
		"redis": st.redis.Pid(), "s3": st.s3.Pid(), "client": 0}
}

func (st *stack) sluiceTarget(events int) (loadgen.Target, error) {
	body, err := loadgen.Body(events, st.s.eventBytes, false)
	return loadgen.Target{URL: "http://" + st.gatewayHTTP + "/v1/events", Key: benchKey, Body: body}, err
}

func (st *stack) ceilingRow(ctx context.Context, events int) (row, error) {
	r := row{kind: "ceiling", label: fmt.Sprintf("ceiling, %s", perRequest(events)), events: events}
	body, err := loadgen.Body(events, st.s.eventBytes, false)
	if err != nil {
		return r, err
	}
	return st.loadRow(ctx, r, loadSpec{
		target: loadgen.Target{URL: "http://" + st.ceilingAddr + "/v1/events", Body: body},
		events: events,
		pids:   map[string]int{"server": st.ceiling.pid(), "client": 0},
	})
}

func (st *stack) sluiceRow(ctx context.Context, kind string, events int) (row, error) {
	label := "Sluice, " + perRequest(events)
	if kind == "sync" {
		label = "Sluice, sync_interval: always, " + perRequest(events)
	}
	r := row{kind: kind, label: label, events: events}
	t, err := st.sluiceTarget(events)
	if err != nil {
		return r, err
	}
	return st.loadRow(ctx, r, loadSpec{target: t, events: events, pids: st.sluicePids(), drain: true,
		profile: fmt.Sprintf("%s-%d", kind, events)})
}

func (st *stack) openRow(ctx context.Context) (row, error) {
	n := st.s.openEvents
	r := row{kind: "open", label: "Sluice, constant rate, " + perRequest(n), events: n}
	t, err := st.sluiceTarget(n)
	if err != nil {
		return r, err
	}
	return st.loadRow(ctx, r, loadSpec{target: t, events: n, pids: st.sluicePids(), open: true, drain: true,
		profile: fmt.Sprintf("open-%d", n)})
}

func (st *stack) seedRow(ctx context.Context) (row, error) {
	n := st.s.seedEvents
	r := row{kind: "seed", label: "seed design, " + perRequest(n), events: n}
	body, err := loadgen.Body(n, st.s.eventBytes, false)
	if err != nil {
		return r, err
	}
	// The article's collection shape: the events are its "data" payloads.
	body = []byte(strings.Replace(string(body), `{"events":[`, `{"version":"1.0","token":"bench","data":[`, 1))
	r, err = st.loadRow(ctx, r, loadSpec{
		target: loadgen.Target{URL: "http://" + st.seedAddr + "/", Body: body},
		events: n,
		pids:   map[string]int{"server": st.seed.pid(), "s3": st.s3.Pid(), "client": 0},
		stored: st.seedStored,
	})
	if err != nil {
		return r, err
	}
	// Stopping it loses its queue, as a deploy or a crash would; it must not
	// go on uploading during the next rows.
	stored, err := st.seedStored(ctx)
	if err != nil {
		return r, err
	}
	st.seed.stop(10 * time.Second)
	st.seed = nil
	r.lost = max(0, int64(r.okTotal*n)-stored)
	return r, nil
}

// syncRow restarts nats-server with `sync_interval: always` (same port and
// store: the gateway and worker reconnect) and runs a Sluice row.
func (st *stack) syncRow(ctx context.Context) (row, error) {
	r := row{kind: "sync", label: "Sluice, sync_interval: always", events: st.s.syncEvents}
	st.nats.stop(30 * time.Second)
	if err := st.startNATS(ctx, true); err != nil {
		return r, err
	}
	if err := st.gateway.waitHTTP(ctx, "http://"+st.gatewayAdmin+"/readyz"); err != nil {
		return r, err
	}
	if err := st.worker.waitHTTP(ctx, "http://"+st.workerAdmin+"/readyz"); err != nil {
		return r, err
	}
	return st.sluiceRow(ctx, "sync", st.s.syncEvents)
}

// loadRow runs a warm-up and the measured load against one server. req/s,
// events/s and latency are of the measured time; CPU per request is over
// the whole row (warm-up, measured time and, with drain, until the stream is
// empty again) divided by every request answered in it.
func (st *stack) loadRow(ctx context.Context, r row, spec loadSpec) (row, error) {
	s := st.s
	conns, measured := s.concurrency, s.duration
	load := func(ctx context.Context, d time.Duration, hc *http.Client) loadgen.Result {
		return loadgen.Closed(ctx, hc, spec.target, s.concurrency, d, 100_000_000)
	}
	r.load = fmt.Sprintf("%d clients", s.concurrency)
	if spec.open {
		conns, measured = s.openInflight, s.openDuration
		load = func(ctx context.Context, d time.Duration, hc *http.Client) loadgen.Result {
			return loadgen.Open(ctx, hc, spec.target, float64(s.rate), d, s.openInflight)
		}
		r.load = fmt.Sprintf("%s req/s for %s", thousands(float64(s.rate)), measured)
	}
	hc := loadgen.NewClient(conns)
	defer hc.CloseIdleConnections()

	m, err := startMeter(spec.pids)
	if err != nil {
		return r, err
	}
	var warm loadgen.Result
	if s.warmup > 0 {
		warm = load(ctx, s.warmup, hc)
	}
	var storedBefore, storedAfter int64
	if spec.stored != nil {
		if storedBefore, err = spec.stored(ctx); err != nil {
			return r, err
		}
	}
	wait := st.profile(ctx, spec.profile, measured)
	res := load(ctx, measured, hc)
	if spec.stored != nil {
		if storedAfter, err = spec.stored(ctx); err != nil {
			return r, err
		}
	}
	if err := wait(); err != nil {
		return r, err
	}
	if ctx.Err() != nil {
		return r, errInterrupted
	}
	if spec.drain {
		if err := st.waitDrained(ctx, drainWithin); err != nil {
			return r, err
		}
	}
	use, rest, err := m.stop()
	if err != nil {
		return r, err
	}
	if err := st.alive(); err != nil {
		return r, err
	}
	sec := res.Elapsed.Seconds()
	r.reqs = float64(res.OK()) / sec
	r.evs = r.reqs * float64(spec.events)
	if spec.stored != nil {
		r.evs = float64(storedAfter-storedBefore) / sec
	}
	r.latency, r.p50, r.p99 = true, res.Percentile(0.5), res.Percentile(0.99)
	r.answered, r.refused = res.Answered(), res.Answered()-res.OK()
	r.okTotal = warm.OK() + res.OK()
	r.statuses = refusals(res.Statuses)
	r.rest = rest
	r.cpu, r.peak = perRequestUsage(use, warm.Answered()+res.Answered())
	return r, nil
}

func perRequestUsage(use map[string]usage, requests int) (map[string]time.Duration, map[string]int64) {
	cpu, peak := map[string]time.Duration{}, map[string]int64{}
	for name, u := range use {
		cpu[name] = u.cpu / time.Duration(max(1, requests))
		if u.peak > 0 {
			peak[name] = u.peak
		}
	}
	return cpu, peak
}

// refusals lists the answers other than 2xx, e.g. "503: 12, error: 1".
func refusals(statuses map[string]int) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(statuses)) {
		if !strings.HasPrefix(k, "2") {
			out = append(out, fmt.Sprintf("%s: %d", k, statuses[k]))
		}
	}
	return strings.Join(out, ", ")
}

func (st *stack) seedStored(ctx context.Context) (int64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+st.seedAddr+"/stats", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("seed stats: %w", err)
	}
	defer resp.Body.Close()
	var n int64
	if _, err := fmt.Fscanf(resp.Body, `{"stored":%d}`, &n); err != nil {
		return 0, fmt.Errorf("seed stats: %w", err)
	}
	return n, nil
}

// profile starts CPU profiles of the gateway, worker and nats-server for d
// when -cpuprofile-dir is set, and returns a func waiting for them.
func (st *stack) profile(ctx context.Context, name string, d time.Duration) func() error {
	if st.s.cpuprofileDir == "" || name == "" {
		return func() error { return nil }
	}
	secs := int((d + time.Second - 1) / time.Second)
	urls := map[string]string{
		"gateway":     "http://" + st.gatewayAdmin,
		"worker":      "http://" + st.workerAdmin,
		"nats-server": fmt.Sprintf("http://127.0.0.1:%d", st.natsProfPort),
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for proc, base := range urls {
		wg.Go(func() {
			path := filepath.Join(st.s.cpuprofileDir, name+"-"+proc+".pprof")
			if err := fetchTo(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs), path); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	return func() error {
		wg.Wait()
		if len(errs) > 0 {
			return fmt.Errorf("CPU profiles: %v", errs)
		}
		return nil
	}
}

func fetchTo(ctx context.Context, url, path string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	return f.Close()
}

func perRequest(n int) string {
	if n == 1 {
		return "1 event/req"
	}
	return fmt.Sprintf("%d events/req", n)
}
