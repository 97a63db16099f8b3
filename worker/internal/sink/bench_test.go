package sink

import (
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// BenchmarkEncode encodes the same object of log-like events (50,000 events
// in 2,000 messages, about 21 MB of NDJSON lines) in each format and
// compression. MB/s is of NDJSON lines, the same input for every case;
// MB/cpu-s is the same per second of this process's CPU time, which other
// processes on a shared machine disturb less; B/event is the object's size
// divided by its events.
//
//	cd worker && go test -run '^$' -bench Encode -benchtime 10x -count 3 ./internal/sink/
func BenchmarkEncode(b *testing.B) {
	b50k := logObject(2000, 25)
	for _, tc := range []struct{ name, format, compression string }{
		{"ndjson-none", FormatNDJSON, "none"}, // the work every format does: lines, digests
		{"ndjson-gzip", FormatNDJSON, "gzip"},
		{"ndjson-zstd", FormatNDJSON, "zstd"},
		{"parquet-zstd", FormatParquet, "zstd"},
		{"parquet-gzip", FormatParquet, "gzip"},
		{"parquet-none", FormatParquet, "none"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			sk, err := New(&countingS3{}, Config{Bucket: "b", Format: tc.format, Compression: tc.compression})
			if err != nil {
				b.Fatal(err)
			}
			benchEncode(b, b50k, func() (int, int, error) {
				obj, err := sk.Encode(b50k)
				return len(obj.Body), obj.Events, err
			})
		})
	}
}

// benchEncode runs encode, which returns the size and the event count of
// the object it made from obj, and reports the metrics of BenchmarkEncode.
func benchEncode(b *testing.B, obj *object.Object, encode func() (size, events int, err error)) {
	lines := 0
	for _, l := range ndjsonLines(b, obj) {
		lines += len(l) + 1
	}
	b.SetBytes(int64(lines))
	var size, events int
	cpu0 := cpuTime(b)
	for b.Loop() {
		var err error
		if size, events, err = encode(); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime(b) - cpu0
	b.ReportMetric(float64(lines)*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
	b.ReportMetric(float64(size)/float64(events), "B/event")
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// cpuTime is the CPU time (user and system) this process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
