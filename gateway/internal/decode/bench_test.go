package decode

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

// benchEvent is a typical small telemetry event (about 150 bytes).
func benchEvent(i int) string {
	return fmt.Sprintf(`{"ts":"2026-11-25T10:59:52.275Z","device":"dev-%06d","kind":"metric","name":"cpu.load","value":%d.25,"tags":{"region":"eu-west-1","fw":"1.4.2"}}`, i, i%100)
}

// BenchmarkDecode decodes a request of 20 events in each body shape and
// encoding; run with -benchmem for B/op and allocs/op.
func BenchmarkDecode(b *testing.B) {
	const n = 20
	evs := make([]string, n)
	for i := range evs {
		evs[i] = benchEvent(i)
	}
	list := strings.Join(evs, ",")
	for _, bc := range []struct {
		name, ct, ce, body string
		events             int
	}{
		{"object", "application/json", "", evs[0], 1},
		{"array", "application/json", "", "[" + list + "]", n},
		{"wrapper", "application/json", "", `{"events":[` + list + "]}", n},
		{"classic", "application/json", "", `{"version":"1","token":"t","data":[` + list + "]}", n},
		{"ndjson", "application/x-ndjson", "", strings.Join(evs, "\n") + "\n", n},
		{"wrapper-gzip", "application/json", "gzip", gz(`{"events":[` + list + "]}"), n},
		{"wrapper-zstd", "application/json", "zstd", zst(`{"events":[` + list + "]}"), n},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := newDecoder(body.Limits{})
			body := []byte(bc.body)
			r := bytes.NewReader(body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(body)
				batch, err := d.Decode(r, bc.ct, bc.ce)
				if err != nil {
					b.Fatal(err)
				}
				if batch.Events != bc.events {
					b.Fatalf("%d events, want %d", batch.Events, bc.events)
				}
				batch.Release()
			}
			b.ReportMetric(float64(bc.events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
