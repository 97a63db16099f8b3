package receipts_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/pkg/receipts"
)

// BenchmarkRecord writes the receipts of one object of 10,000 batches, then
// writes them again (a redelivered batch meeting its stored object).
func BenchmarkRecord(b *testing.B) {
	_, w := startBucket(b)
	const n = 10000
	i := 0
	for b.Loop() {
		batches := make([]receipts.Batch, n)
		for j := range batches {
			batches[j] = receipts.Batch{Tenant: "acme", BatchID: fmt.Sprintf("b%d-%d", i, j), Events: 1}
		}
		o := receipts.Outcome{ID: receipts.ObjectOutcome(fmt.Sprint(i)), Key: fmt.Sprint(i), At: time.Now()}
		start := time.Now()
		if _, err := w.Record(b.Context(), batches, o); err != nil {
			b.Fatal(err)
		}
		first := time.Since(start)
		start = time.Now()
		counted, err := w.Record(b.Context(), batches, o)
		if err != nil || !counted[n-1] {
			b.Fatal(err, counted[n-1])
		}
		b.ReportMetric(float64(n)/first.Seconds(), "receipts/s")
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "rewrites/s")
		i++
	}
}
