// Command sluice-bench is the end-to-end benchmark (`make bench-e2e`): it runs
// nats-server, redis-server, versitygw and the gateway and worker binaries as
// processes on 127.0.0.1, drives them with closed-loop and constant-rate loads
// beside the ceiling and the seed design (docs/benchmarks.md), and writes one
// table (markdown) and bar chart (SVG) to -out-dir. It stops all it started on
// exit or Ctrl-C; its subcommands nats, ceiling and seed are servers it runs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx := context.Background()
	var err error
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		err = runServer(ctx, os.Args[1], os.Args[2:], os.Stderr)
	} else {
		err = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "sluice-bench:", err)
		os.Exit(1)
	}
}

// runServer runs one of the servers the benchmark starts from its own
// executable.
func runServer(ctx context.Context, name string, args []string, stderr io.Writer) error {
	switch name {
	case "nats":
		return runNATS(ctx, args, stderr)
	case "ceiling":
		return runCeiling(ctx, args, stderr)
	case "seed":
		return runSeed(ctx, args, stderr)
	}
	return fmt.Errorf("unknown subcommand %q (nats, ceiling, seed; none: run the benchmark)", name)
}

// Row kinds, in the order they run; -rows picks among them.
var allKinds = []string{"ceiling", "sluice", "open", "seed", "drain", "sync"}

type settings struct {
	duration, warmup time.Duration
	concurrency      int
	events           []int
	eventBytes       int
	kinds            []string

	rate         int
	openDuration time.Duration
	openEvents   int
	openInflight int

	seedEvents, seedWorkers, seedQueue int

	drainEvents, drainPerMsg int
	syncEvents               int

	outDir, cpuprofileDir, binDir, workDir string
	command                                string
}

func (s settings) has(kind string) bool { return slices.Contains(s.kinds, kind) }

func parseSettings(args []string, stderr io.Writer) (settings, error) {
	var s settings
	exe, _ := os.Executable()
	fs := flag.NewFlagSet("sluice-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&s.duration, "duration", 10*time.Second, "measured time of each closed-loop row")
	fs.DurationVar(&s.warmup, "warmup", 2*time.Second, "load sent before each row's measured time (not in its req/s and latency)")
	fs.IntVar(&s.concurrency, "concurrency", 64, "clients of each closed-loop row")
	events := fs.String("events", "1,10,100", "events per request of the closed-loop rows (the ceiling runs at each)")
	fs.IntVar(&s.eventBytes, "event-bytes", 200, "approximate size of one event")
	rows := fs.String("rows", strings.Join(allKinds, ","), "rows to run: "+strings.Join(allKinds, ", "))
	fs.IntVar(&s.rate, "rate", 6000, "open loop: requests/s")
	fs.DurationVar(&s.openDuration, "open-duration", 20*time.Second, "open loop: how long")
	fs.IntVar(&s.openEvents, "open-events", 10, "open loop: events per request")
	fs.IntVar(&s.openInflight, "open-inflight", 512, "open loop: most requests in flight (then requests wait, and their wait counts)")
	fs.IntVar(&s.seedEvents, "seed-events", 10, "seed design: events (payloads) per request")
	fs.IntVar(&s.seedWorkers, "seed-workers", 64, "seed design: MAX_WORKERS")
	fs.IntVar(&s.seedQueue, "seed-queue", 10000, "seed design: MAX_QUEUE")
	fs.IntVar(&s.drainEvents, "drain-events", 1_000_000, "worker drain: events pre-filled in the stream")
	fs.IntVar(&s.drainPerMsg, "drain-per-msg", 10, "worker drain: events per message")
	fs.IntVar(&s.syncEvents, "sync-events", 1, "sync_interval: always row: events per request")
	fs.StringVar(&s.outDir, "out-dir", "docs", "where bench-e2e.md and bench-e2e.svg are written")
	fs.StringVar(&s.cpuprofileDir, "cpuprofile-dir", "", "save CPU profiles of the gateway, worker and nats-server of each Sluice row here")
	fs.StringVar(&s.binDir, "bin-dir", filepath.Dir(exe), "directory holding the gateway and worker binaries")
	fs.StringVar(&s.workDir, "work-dir", "", "directory for the servers' files and logs (default: a new temporary one, removed at the end)")
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for f := range strings.SplitSeq(*events, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return s, fmt.Errorf("-events %q: want a comma-separated list of counts >= 1", *events)
		}
		s.events = append(s.events, n)
	}
	for f := range strings.SplitSeq(*rows, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(allKinds, f) {
			return s, fmt.Errorf("-rows: unknown row %q (want some of %s)", f, strings.Join(allKinds, ", "))
		}
		s.kinds = append(s.kinds, f)
	}
	for name, v := range map[string]int{"concurrency": s.concurrency, "event-bytes": s.eventBytes, "rate": s.rate,
		"open-events": s.openEvents, "open-inflight": s.openInflight, "seed-events": s.seedEvents,
		"seed-workers": s.seedWorkers, "seed-queue": s.seedQueue, "drain-events": s.drainEvents,
		"drain-per-msg": s.drainPerMsg, "sync-events": s.syncEvents} {
		if v < 1 {
			return s, fmt.Errorf("-%s %d: must be at least 1", name, v)
		}
	}
	if s.duration < 100*time.Millisecond || s.openDuration < 100*time.Millisecond || s.warmup < 0 {
		return s, fmt.Errorf("-duration and -open-duration must be at least 100ms, -warmup not negative")
	}
	s.command = strings.TrimSpace(os.Args[0] + " " + strings.Join(args, " "))
	return s, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := parseSettings(args, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if s.workDir == "" {
		dir, err := os.MkdirTemp("", "sluice-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		s.workDir = dir
	}
	for _, d := range []string{s.outDir, s.cpuprofileDir} {
		if d != "" {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "sluice-bench: "+format+"\n", a...) }
	started := time.Now().UTC()
	loadBefore := loadAvg()

	st, err := startStack(ctx, s, logf)
	if st != nil {
		defer st.close()
	}
	if err != nil {
		return err
	}
	results, err := runRows(ctx, s, st, logf)
	if err != nil {
		return err
	}
	rep := report{settings: s, started: started, loadBefore: loadBefore, loadAfter: loadAvg(), rows: results}
	md := rep.markdown()
	fmt.Fprint(stdout, rep.table())
	if err := os.WriteFile(filepath.Join(s.outDir, "bench-e2e.md"), []byte(md), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.outDir, "bench-e2e.svg"), []byte(rep.svg()), 0o644); err != nil {
		return err
	}
	logf("wrote %s and %s", filepath.Join(s.outDir, "bench-e2e.md"), filepath.Join(s.outDir, "bench-e2e.svg"))
	return nil
}
