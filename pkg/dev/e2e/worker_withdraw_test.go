package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// manyTenants is a keys file of n tenants, t000 to t<n-1>, the key of
// tenant t000 being key-t000: enough tenants that every one of the 16
// partitions gets messages.
func manyTenants(n int) (keys string, tenants []string) {
	var b strings.Builder
	for i := range n {
		tenant := fmt.Sprintf("t%03d", i)
		tenants = append(tenants, tenant)
		fmt.Fprintf(&b, "key-%s %s\n", tenant, tenant)
	}
	return b.String(), tenants
}

// runTenantsLoad posts requests of 1 to 5 events from 2 clients, each at
// most 40 a second, going round the tenants, until stop is closed or max
// requests were sent.
func runTenantsLoad(t *testing.T, ingest string, tenants []string, max int, stop <-chan struct{}) (*load, func()) {
	l := &load{accepted: map[int]acceptedReq{}, started: map[int]bool{}}
	var next atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range 2 {
		wg.Go(func() {
			pace := time.NewTicker(25 * time.Millisecond)
			defer pace.Stop()
			for {
				req := int(next.Add(1))
				if req > max {
					return
				}
				select {
				case <-stop:
					return
				case <-pace.C:
				}
				tenant := tenants[req%len(tenants)]
				a, err := post(t, client, ingest, "key-"+tenant, req, 1+req%5)
				if err != nil {
					l.errs.Add(1)
					continue
				}
				a.tenant = tenant
				l.mu.Lock()
				l.accepted[req] = a
				l.mu.Unlock()
			}
		})
	}
	return l, wg.Wait
}

// gauge is a metric of the worker at admin, or -1 while it has none.
func gauge(admin, name string) float64 {
	text, err := page("http://" + admin + "/metrics")
	if err != nil {
		return -1
	}
	if v, ok := sample(text, name); ok {
		return v
	}
	return -1
}

// spoilingProxy forwards S3 requests to an S3 server. While spoil is set,
// it spoils the signature of every request, as if the worker signed them
// with a wrong secret, so S3 refuses them all (SignatureDoesNotMatch),
// uploads and write checks alike.
type spoilingProxy struct {
	spoil   atomic.Bool
	spoiled atomic.Int64
	url     string
}

func startSpoilingProxy(t *testing.T, endpoint string) *spoilingProxy {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &spoilingProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth := r.Header.Get("Authorization"); p.spoil.Load() && auth != "" {
			// The last hex digit of Signature=... changed.
			last := auth[len(auth)-1]
			r.Header.Set("Authorization", auth[:len(auth)-1]+map[bool]string{true: "1", false: "0"}[last == '0'])
			p.spoiled.Add(1)
		}
		rp.ServeHTTP(w, r) // the Host header stays the one signed
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// TestUnwritableWorkerLeavesItsPartitions: two real workers share the 16
// partitions under load over many tenants, with SLUICE_MAX_DELIVER 3. One
// goes through a proxy that, in rounds, makes its secret wrong while it
// holds messages. Each time, it hands them back and leaves the assignment:
// its partitions move to the other worker (sluice_worker_partitions_owned
// 0 and 16). Once its secret is right again, its next write check passes
// and it rejoins. Its hand-backs are recorded, nothing goes to the DLQ,
// and every accepted event lands once.
func TestUnwritableWorkerLeavesItsPartitions(t *testing.T) {
	keys, tenants := manyTenants(128)
	st := startStack(t, keys, map[string]string{
		"SLUICE_BATCH_MAX_AGE": "300ms",
		"SLUICE_ACK_WAIT":      "3s",
		"SLUICE_MAX_DELIVER":   "3",
	})
	good := st.workerEnv["SLUICE_ADMIN_ADDR"]
	proxy := startSpoilingProxy(t, st.s3.Endpoint())
	env := map[string]string{}
	for k, v := range st.workerEnv {
		env[k] = v
	}
	flapping := devtest.Addr(t)
	env["SLUICE_ADMIN_ADDR"], env["SLUICE_S3_ENDPOINT"] = flapping, proxy.url
	fw := devtest.Start(t, "worker-flapping", devtest.Binary(t, workerPkg), env)
	devtest.WaitReady(t, fw, "http://"+flapping+"/readyz")
	t.Cleanup(func() {
		if t.Failed() { // their goroutines, in the outputs printed next
			st.worker.Signal(syscall.SIGQUIT)
			fw.Signal(syscall.SIGQUIT)
			time.Sleep(time.Second)
		}
	})
	owns := func(admin string, n float64) func() bool {
		return func() bool { return gauge(admin, "sluice_worker_partitions_owned") == n }
	}
	_, js := devtest.JetStream(t, st.nats)
	events, err := js.Stream(t.Context(), stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	// stalled is the partitions whose messages stored up to seq are not
	// all acked yet.
	stalled := func(seq uint64) []string {
		var names []string
		for p := range stream.DefaultPartitions {
			name := stream.PartitionConsumer("", p)
			info, err := js.Consumer(t.Context(), stream.EventsStream, name)
			if err != nil {
				names = append(names, name+" ("+err.Error()+")")
				continue
			}
			ci := info.CachedInfo()
			if ci.AckFloor.Stream < seq && (ci.NumPending > 0 || ci.NumAckPending > 0) {
				names = append(names, name)
			}
		}
		return names
	}

	var left []string
	defer func() {
		if len(left) > 0 {
			t.Logf("partitions stalled: %v", left)
		}
	}()
	stop := make(chan struct{})
	l, wait := runTenantsLoad(t, st.ingest, tenants, 1<<30, stop)
	const rounds = 3
	for round := 1; round <= rounds; round++ {
		// It holds messages of its partitions when its secret goes wrong.
		devtest.Eventually(t, 30*time.Second, 20*time.Millisecond, func() bool { return gauge(flapping, "sluice_worker_inflight_bytes") > 0 },
			"the worker holds nothing of its partitions")
		proxy.spoil.Store(true)
		start := time.Now()
		info, err := events.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		// Every partition, its own included, goes on: what was stored when
		// its secret went wrong is all acked, by the other worker.
		devtest.Eventually(t, 60*time.Second, 100*time.Millisecond, func() bool { left = stalled(info.State.LastSeq); return len(left) == 0 },
			fmt.Sprintf("round %d: partitions made no progress while a worker could not write", round))
		moved := time.Since(start)
		devtest.Eventually(t, 60*time.Second, 20*time.Millisecond, func() bool {
			return gauge(flapping, "sluice_worker_withdrawals_total") >= float64(round) && owns(flapping, 0)() && owns(good, 16)()
		}, fmt.Sprintf("round %d: the refused worker's partitions did not move to the other worker", round))
		// Its secret is right again: its next write check passes and it
		// rejoins.
		proxy.spoil.Store(false)
		devtest.Eventually(t, 60*time.Second, 20*time.Millisecond, func() bool { return owns(flapping, 8)() && owns(good, 8)() },
			fmt.Sprintf("round %d: the worker did not rejoin after its write check passed", round))
		t.Logf("round %d: every partition's backlog acked %v after the secret went wrong, partitions shared again %v after", round,
			moved.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
	close(stop)
	wait()
	if len(l.accepted) == 0 {
		t.Fatal("no request accepted")
	}

	devtest.Eventually(t, 60*time.Second, 100*time.Millisecond, func() bool {
		info, err := events.Info(t.Context())
		return err == nil && info.State.Msgs == 0
	}, "the events did not all land")
	dlq, err := js.Stream(t.Context(), stream.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := dlq.Info(t.Context()); err != nil || info.State.Msgs != 0 {
		t.Errorf("dead letters: %+v, %v; want none", info.State, err)
	}
	count, _, _ := readLines(t, st)
	want := 0
	for req, a := range l.accepted {
		for n := range a.events {
			want++
			if id := fmt.Sprintf("%s-%d", a.batchID, n); count[id] != 1 {
				t.Errorf("event %s of request %d (tenant %s) stored %d times", id, req, a.tenant, count[id])
			}
		}
	}
	recorded := gauge(flapping, "sluice_worker_handbacks_recorded_total")
	t.Logf("%d requests, %d events accepted; %d S3 requests refused; %v hand-backs recorded", len(l.accepted), want, proxy.spoiled.Load(), recorded)
	if recorded <= 0 {
		t.Errorf("the refused worker recorded %v hand-backs", recorded)
	}
	out := fw.Output()
	if n := strings.Count(out, "leaving the partition assignment"); n != rounds {
		t.Errorf("%d log lines about leaving the assignment, want %d", n, rounds)
	}
	if n := strings.Count(out, "rejoining the partition assignment"); n != rounds {
		t.Errorf("%d log lines about rejoining the assignment, want %d", n, rounds)
	}
}
