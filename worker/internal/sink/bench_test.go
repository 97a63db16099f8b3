package sink

import (
	"testing"
)

// BenchmarkEncode encodes the same batch of log-like events (50,000 events
// in 2,000 messages, about 19 MB of NDJSON lines) in each format and
// compression. MB/s is of NDJSON lines, the same input for every case;
// B/event is the object's size divided by its events.
//
//	cd worker && go test -run '^$' -bench Encode -benchtime 20x ./internal/sink/
func BenchmarkEncode(b *testing.B) {
	batch := logBatch(2000, 25)
	for _, tc := range []struct{ name, format, compression string }{
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
			lines := 0
			for _, l := range ndjsonLines(b, batch) {
				lines += len(l) + 1
			}
			b.SetBytes(int64(lines))
			var size, events int
			for b.Loop() {
				obj, err := sk.Encode(batch)
				if err != nil {
					b.Fatal(err)
				}
				size, events = len(obj.Body), obj.Events
			}
			b.ReportMetric(float64(size)/float64(events), "B/event")
			b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
