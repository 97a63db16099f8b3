package api

import (
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/pkg/stream"
)

// TestReceivedAtAfterTheBody: a request whose body is still arriving when
// its handling begins is stamped once all of it is here, not when it
// began. The clock is the gateway's own (Config.Now), moved on by the test
// between the two halves of the body, after the handler has begun.
func TestReceivedAtAfterTheBody(t *testing.T) {
	for _, coalesce := range []bool{false, true} {
		name := map[bool]string{false: "alone", true: "coalescing"}[coalesce]
		t.Run(name, func(t *testing.T) {
			t0 := time.Date(2026, 12, 1, 14, 10, 0, 0, time.UTC)
			var clock atomic.Int64
			clock.Store(t0.UnixNano())
			begun := make(chan struct{}, 1)
			now := func() time.Time {
				select {
				case begun <- struct{}{}: // the first reading is the handler beginning
				default:
				}
				return time.Unix(0, clock.Load()).UTC()
			}
			g := startGateway(t, gatewayOptions{cfg: Config{Now: now}, noCoalesce: !coalesce})

			pr, pw := io.Pipe()
			answered := make(chan answer, 1)
			go func() {
				a, err := g.do(req{key: "key-a", ct: "application/x-ndjson", body: pr, length: -1})
				if err != nil {
					t.Error(err)
				}
				answered <- a
			}()
			if _, err := pw.Write([]byte(`{"a":1}` + "\n")); err != nil {
				t.Fatal(err)
			}
			<-begun
			t1 := t0.Add(25 * time.Second) // the rest of the body arrives
			clock.Store(t1.UnixNano())
			if _, err := pw.Write([]byte(`{"a":2}` + "\n")); err != nil {
				t.Fatal(err)
			}
			_ = pw.Close()
			if a := <-answered; a.status != 202 || a.Accepted != 2 {
				t.Fatalf("answer %+v", a)
			}
			msgs := g.messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages", len(msgs))
			}
			if got, want := msgs[0].Header.Get(stream.HeaderReceivedAt), t1.Format(time.RFC3339Nano); got != want {
				t.Errorf("%s = %s, want %s: when the body had arrived", stream.HeaderReceivedAt, got, want)
			}
		})
	}
}
