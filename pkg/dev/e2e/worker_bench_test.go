package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// BenchmarkWorkerDrain measures how fast the real worker binary drains a
// pre-filled stream into versitygw, for 1 and 20 events per message. Each
// iteration fills the stream (timer stopped), starts a worker, waits until
// the stream is empty (every message stored and acknowledged) and stops the
// worker. CPU (getrusage of the child) and peak RSS (VmHWM) are the worker
// process's own; NATS runs in the benchmark process and versitygw in its
// own.
//
//	cd pkg && go test -run '^$' -bench WorkerDrain -benchtime 1x ./e2e/
func BenchmarkWorkerDrain(b *testing.B) {
	const events = 2_000_000
	for _, perMsg := range []int{1, 20} {
		b.Run(fmt.Sprintf("events_per_msg=%d", perMsg), func(b *testing.B) {
			n := devtest.NATS(b)
			s3srv := devtest.S3(b)
			nc, js := devtest.JetStream(b, n)
			if err := stream.EnsureStreams(b.Context(), js, stream.Config{}); err != nil {
				b.Fatal(err)
			}
			bin := devtest.Binary(b, workerPkg)
			var elapsed time.Duration
			var cpu time.Duration
			var rss int64
			var bodyBytes, objects int64
			for b.Loop() {
				b.StopTimer()
				bodyBytes += fill(b, js, events/perMsg, perMsg)
				before := len(devtest.MustReadObjects(b, s3srv.Client(), devstack.S3Bucket, "bench/"))
				b.StartTimer()
				start := time.Now()
				used, peak := drain(b, bin, n, s3srv, js)
				elapsed += time.Since(start)
				b.StopTimer()
				cpu += time.Duration(used)
				rss = max(rss, peak)
				objects += int64(len(devtest.MustReadObjects(b, s3srv.Client(), devstack.S3Bucket, "bench/")) - before)
				b.StartTimer()
			}
			_ = nc
			total := float64(b.N * events)
			b.ReportMetric(total/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(bodyBytes)/(1<<20)/elapsed.Seconds(), "MiB/s")
			b.ReportMetric(float64(objects)/elapsed.Seconds(), "objects/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/total, "cpu-ns/event")
			b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// fill publishes msgs messages of perMsg events (about 190 bytes each, as
// telemetry looks) and returns the body bytes published.
func fill(b *testing.B, js jetstream.JetStream, msgs, perMsg int) int64 {
	b.Helper()
	var total int64
	now := time.Now().UTC()
	for i := range msgs {
		var body strings.Builder
		for e := range perMsg {
			fmt.Fprintf(&body, `{"device":"dev-%06d","metric":"cpu.load","value":%d.%02d,"ts":"%s","tags":{"region":"eu-west-%d","build":"2026.11.%d"}}`+"\n",
				(i*7+e)%100000, i%100, e, now.Format(time.RFC3339Nano), i%3, e%30)
		}
		m := nats.NewMsg(stream.EventsSubject([]string{"acme", "beta", "gamma", "delta"}[i%4]))
		envelope.Meta{Tenant: m.Subject[len("sluice.events."):], BatchID: envelope.NewBatchID(), ReceivedAt: now, EventCount: perMsg}.SetHeaders(m.Header)
		m.Data = []byte(body.String())
		total += int64(len(m.Data))
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
		if i%2048 == 2047 {
			<-js.PublishAsyncComplete()
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("prefill not acknowledged within a minute")
	}
	return total
}

// drain runs the worker until the stream is empty and returns the CPU time
// it used (user + system, in nanoseconds) and its peak resident set.
func drain(b *testing.B, bin string, n *devstack.NATS, s3srv *devstack.S3, js jetstream.JetStream) (cpuNanos, peak int64) {
	b.Helper()
	cmd := exec.Command(bin)
	cmd.Env = devtest.Env(map[string]string{
		"SLUICE_NATS_URL":        n.URL(),
		"SLUICE_ADMIN_ADDR":      devtest.Addr(b),
		"SLUICE_S3_ENDPOINT":     s3srv.Endpoint(),
		"SLUICE_S3_PATH_STYLE":   "true",
		"SLUICE_S3_BUCKET":       devstack.S3Bucket,
		"SLUICE_S3_PREFIX":       "bench",
		"SLUICE_BATCH_MAX_BYTES": "16MiB",
		"SLUICE_BATCH_MAX_AGE":   "1s",
		"SLUICE_LOG_LEVEL":       "warn",
		"AWS_ACCESS_KEY_ID":      devstack.S3AccessKey,
		"AWS_SECRET_ACCESS_KEY":  devstack.S3SecretKey,
		"AWS_REGION":             devstack.S3Region,
	})
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	devstack.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	for {
		st, err := js.Stream(ctx, stream.EventsStream)
		if err == nil {
			if info, err := st.Info(ctx); err == nil && info.State.Msgs == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			b.Fatal("stream not drained within 5 minutes")
		case <-time.After(20 * time.Millisecond):
		}
	}
	peak = peakRSS(b, cmd.Process.Pid)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		b.Fatalf("worker exit: %v", err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return ru.Utime.Nano() + ru.Stime.Nano(), peak
}

// peakRSS reads a process's high-water resident set (VmHWM). The rusage
// ru_maxrss of a child is no good here: it counts the parent's memory
// shared with the child between fork and exec.
func peakRSS(b *testing.B, pid int) int64 {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb)
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}
