package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// report is one run's table, as text and as a chart.
type report struct {
	settings
	started               time.Time
	loadBefore, loadAfter string
	rows                  []row
}

// ceilingOf is the ceiling row at the same events per request as r.
func (rep report) ceilingOf(r row) (row, bool) {
	for _, c := range rep.rows {
		if c.kind == "ceiling" && c.events == r.events {
			return c, true
		}
	}
	return row{}, false
}

// ratio is r's events/s over its ceiling's, "" without a ceiling row.
func (rep report) ratio(r row) (float64, bool) {
	c, ok := rep.ceilingOf(r)
	if !ok || c.evs == 0 {
		return 0, false
	}
	return r.evs / c.evs, true
}

var tableHeader = []string{"row", "load", "req/s", "events/s", "p50", "p99", "refused", "× ceiling",
	"CPU µs/req server", "worker", "nats", "redis", "s3", "client",
	"peak RSS MiB server", "worker", "nats", "redis", "s3", "rest of machine"}

// table is the markdown table.
func (rep report) table() string {
	var b strings.Builder
	line := func(cells []string) { b.WriteString("| " + strings.Join(cells, " | ") + " |\n") }
	line(tableHeader)
	sep := make([]string, len(tableHeader))
	for i := range sep {
		sep[i] = "---:"
	}
	sep[0], sep[1] = "---", "---"
	line(sep)
	for _, r := range rep.rows {
		cells := []string{r.label, r.load, thousands(r.reqs), thousands(r.evs), "–", "–", refusedCell(r), "–"}
		if r.latency {
			cells[4], cells[5] = millis(r.p50), millis(r.p99)
		}
		if x, ok := rep.ratio(r); ok {
			cells[7] = ratioText(x)
		}
		for _, name := range procNames {
			cells = append(cells, micros(r.cpu, name))
		}
		for _, name := range procNames[:5] {
			cells = append(cells, mebibytes(r.peak, name))
		}
		cells = append(cells, fmt.Sprintf("%.2f cores", r.rest))
		line(cells)
	}
	return b.String()
}

// ratioText shows a ratio with two decimals, or two significant digits
// under 0.1 (the seed design's are tiny).
func ratioText(x float64) string {
	if x >= 0.1 {
		return fmt.Sprintf("%.2f", x)
	}
	return fmt.Sprintf("%.2g", x)
}

func refusedCell(r row) string {
	if r.kind == "drain" {
		return "–"
	}
	if r.refused == 0 {
		return "0"
	}
	return fmt.Sprintf("%.2f %% (%s)", 100*float64(r.refused)/float64(max(1, r.answered)), r.statuses)
}

// markdown is the table with when, where and how it was measured.
func (rep report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# End-to-end benchmark\n\n")
	fmt.Fprintf(&b, "Measured %s on %s; %s.\n", rep.started.Format("2006-01-02 15:04 MST"), machine(), runtime.Version())
	fmt.Fprintf(&b, "Load average (1, 5, 15 min) before: %s; after: %s.\n\n", rep.loadBefore, rep.loadAfter)
	fmt.Fprintf(&b, "```\n%s\n```\n\n", rep.command)
	b.WriteString(rep.table())
	for _, r := range rep.rows {
		if r.kind == "seed" {
			fmt.Fprintf(&b, "\nThe seed design answered 200 for %s payloads it had not stored when it was stopped: they are lost.\n", thousands(float64(r.lost)))
		}
	}
	b.WriteString(`
req/s and latency are of the measured time after a warm-up; latency from the
send (open loop: from the intended send time). events/s of the seed design are
the events stored in S3, of Sluice rows the events answered 202 (in JetStream),
of the drain the events written to S3 and acknowledged. × ceiling is events/s
over the ceiling's at the same events per request. CPU µs/req is user + system
time of each process over the whole row (warm-up, measured time and, for
Sluice rows, until the worker emptied the stream) per request answered (per
message for the drain); server is the ceiling, the seed design or the gateway;
client is the load generator. Peak RSS is each process's VmHWM over the row.
Rest of machine is the CPU every other process used during the row (other
work on the machine, and the benchmark's idle servers), in processors kept
busy: the figures of a row with much of it are the less reliable.

![req/s and p99 of each row against the ceiling](bench-e2e.svg)
`)
	return b.String()
}

// machine describes this computer: CPU model, cores, memory, kernel.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.1f GiB RAM", float64(kb)/(1<<20))
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%d × %s%s, Linux %s", runtime.NumCPU(), model, mem, strings.TrimSpace(string(kernel)))
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], ", ")
}

// thousands formats a rate rounded to a whole number, with commas.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func millis(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	if ms >= 1000 {
		return fmt.Sprintf("%.2f s", ms/1000)
	}
	if ms < 10 {
		return fmt.Sprintf("%.2f ms", ms)
	}
	return fmt.Sprintf("%.1f ms", ms)
}

func micros(m map[string]time.Duration, name string) string {
	d, ok := m[name]
	if !ok {
		return "–"
	}
	us := float64(d) / float64(time.Microsecond)
	if us < 10 {
		return fmt.Sprintf("%.1f", us)
	}
	return fmt.Sprintf("%.0f", us)
}

func mebibytes(m map[string]int64, name string) string {
	v, ok := m[name]
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.0f", float64(v)/(1<<20))
}
