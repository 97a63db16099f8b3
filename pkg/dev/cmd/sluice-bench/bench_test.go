package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-ingest/sluice/limiter/proctest"
	"github.com/sluice-ingest/sluice/limiter/redistest"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
)

// TestBenchmarkRunsEveryRow runs the whole benchmark binary with tiny
// durations against the real servers and binaries and checks that the table
// it writes has every row with figures that are present and sane. It never
// judges a speed.
func TestBenchmarkRunsEveryRow(t *testing.T) {
	for name, env := range map[string]string{"versitygw": "SLUICE_VERSITYGW", redistest.Binary: redistest.BinaryEnv} {
		if _, err := proctest.FindBinary(name, env); err != nil {
			proctest.Missing(t, err)
		}
	}
	// Built into one directory, where sluice-bench looks for the others.
	devtest.Binary(t, "github.com/sluice-ingest/sluice/gateway/cmd/gateway")
	devtest.Binary(t, "github.com/sluice-ingest/sluice/worker/cmd/worker")
	bin := devtest.Binary(t, "github.com/sluice-ingest/sluice/pkg/dev/cmd/sluice-bench")
	out, profiles := t.TempDir(), t.TempDir()
	// The seed design's queue is larger than the run can fill: a full queue
	// blocks its handler, and on a loaded machine its uploads are slow
	// enough that no request would be answered within the second.
	cmd := exec.CommandContext(t.Context(), bin, "-duration", "1s", "-warmup", "200ms", "-concurrency", "8",
		"-events", "1,10", "-rate", "200", "-open-duration", "1s", "-open-inflight", "16",
		"-seed-workers", "4", "-seed-queue", "100000", "-drain-events", "2000",
		"-out-dir", out, "-cpuprofile-dir", profiles)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sluice-bench: %v\n%s", err, b)
	}
	md, err := os.ReadFile(filepath.Join(out, "bench-e2e.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := tableRows(t, string(md))
	want := []string{
		"ceiling, 1 event/req", "Sluice, 1 event/req", "ceiling, 10 events/req", "Sluice, 10 events/req",
		"Sluice, constant rate, 10 events/req", "seed design, 10 events/req", "worker drain, 10 events/msg",
		"Sluice, sync_interval: always, 1 event/req",
	}
	if len(rows) != len(want) {
		t.Fatalf("table has %d rows, want %d:\n%s", len(rows), len(want), md)
	}
	col := func(name string) int {
		for i, h := range tableHeader {
			if h == name {
				return i
			}
		}
		t.Fatalf("no column %q", name)
		return 0
	}
	for i, label := range want {
		r := rows[i]
		if r[0] != label {
			t.Errorf("row %d is %q, want %q", i, r[0], label)
			continue
		}
		for _, c := range []string{"req/s", "events/s", "CPU µs/req server"} {
			if label == "worker drain, 10 events/msg" && c == "CPU µs/req server" {
				c = "worker"
			}
			if v := number(r[col(c)]); v <= 0 {
				t.Errorf("%s: %s = %q, want a positive figure", label, c, r[col(c)])
			}
		}
		if !strings.HasPrefix(label, "worker drain") {
			p50, p99 := millisOf(r[col("p50")]), millisOf(r[col("p99")])
			if p50 <= 0 || p99 < p50 {
				t.Errorf("%s: p50 %q p99 %q", label, r[col("p50")], r[col("p99")])
			}
			if v := number(r[col("× ceiling")]); v <= 0 {
				t.Errorf("%s: × ceiling = %q", label, r[col("× ceiling")])
			}
		}
		if label == "Sluice, 1 event/req" {
			for _, c := range []string{"worker", "nats"} {
				if v := number(r[col(c)]); v <= 0 {
					t.Errorf("%s: CPU of %s = %q", label, c, r[col(c)])
				}
			}
		}
	}
	svg, err := os.ReadFile(filepath.Join(out, "bench-e2e.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(svg), "<svg") || strings.Count(string(svg), "<rect") < len(want)+1 {
		t.Errorf("chart has %d bars for %d rows", strings.Count(string(svg), "<rect")-1, len(want))
	}
	for _, l := range want {
		if !strings.Contains(string(svg), l) {
			t.Errorf("chart lacks %q", l)
		}
	}
	for _, p := range []string{"sluice-1-gateway.pprof", "sluice-1-worker.pprof", "sluice-1-nats-server.pprof"} {
		if fi, err := os.Stat(filepath.Join(profiles, p)); err != nil || fi.Size() == 0 {
			t.Errorf("CPU profile %s: %v", p, err)
		}
	}
}

// tableRows returns the cells of the markdown table's body rows.
func tableRows(t *testing.T, md string) [][]string {
	t.Helper()
	var rows [][]string
	for l := range strings.SplitSeq(md, "\n") {
		if !strings.HasPrefix(l, "| ") || strings.HasPrefix(l, "| row ") || strings.HasPrefix(l, "| ---") {
			continue
		}
		cells := strings.Split(strings.Trim(l, "| "), " | ")
		if len(cells) != len(tableHeader) {
			t.Fatalf("row with %d cells, want %d: %s", len(cells), len(tableHeader), l)
		}
		rows = append(rows, cells)
	}
	return rows
}

// number parses the leading figure of a cell ("12,345", "1.05 ms"); -1
// when there is none.
func number(cell string) float64 {
	f := strings.Fields(strings.ReplaceAll(cell, ",", ""))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// millisOf reads a latency cell ("1.05 ms", "2.30 s") in milliseconds.
func millisOf(cell string) float64 {
	v := number(cell)
	if strings.HasSuffix(cell, " s") {
		v *= 1000
	}
	return v
}
