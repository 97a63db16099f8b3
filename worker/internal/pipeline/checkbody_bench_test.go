package pipeline

import (
	"fmt"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluice-ingest/sluice/pkg/envelope"
)

// BenchmarkCheckBody checks the body of a message as the fetch loop does
// for every message: 100 log-like events of about 130 bytes, with some
// non-ASCII text. utf8 is the UTF-8 scan of the same body alone, the part
// of checkBody that json.Valid does not do. MB/s is of body bytes.
//
//	cd worker && go test -run '^$' -bench CheckBody -benchmem -count 6 ./internal/pipeline/
func BenchmarkCheckBody(b *testing.B) {
	var body []byte
	for i := range 100 {
		body = fmt.Appendf(body, `{"ts":"2026-12-07T20:00:%02d.123Z","level":"info","service":"checkout","msg":"order %d placed — für €%d,50","user":"u-%06d"}`+"\n", i%60, i, i, i*7)
	}
	meta := envelope.Meta{Tenant: "acme", BatchID: envelope.NewBatchID(), ReceivedAt: time.Now(), EventCount: 100}
	b.Run("body", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if err := checkBody(body, meta); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("utf8", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if !utf8.Valid(body) {
				b.Fatal("invalid")
			}
		}
	})
}
