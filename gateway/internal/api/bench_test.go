package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/pkg/dev/loadgen"
	"github.com/sluice-ingest/sluice/pkg/ledger"
)

// BenchmarkHandler measures requests/s over real HTTP on loopback, for the
// bare handler and for the gateway (auth, decode, publish to an embedded
// JetStream with file storage, wait for the PubAck), at 1 and 20 events per
// request, in the same run. The client runs in the same process.
func BenchmarkHandler(b *testing.B) {
	for _, n := range []int{1, 20} {
		evs := make([]string, n)
		for i := range evs {
			evs[i] = fmt.Sprintf(`{"ts":"2026-11-25T10:59:52.275Z","device":"dev-%06d","kind":"metric","name":"cpu.load","value":%d.25,"tags":{"region":"eu-west-1","fw":"1.4.2"}}`, i, i%100)
		}
		body := `{"events":[` + strings.Join(evs, ",") + `]}`
		b.Run(fmt.Sprintf("bare/events=%d", n), func(b *testing.B) {
			benchHTTP(b, http.HandlerFunc(loadgen.Ceiling), body, n)
		})
		for _, counted := range []bool{false, true} {
			name := "gateway"
			if counted {
				name = "gateway+counted" // accepted events counted and flushed every second
			}
			b.Run(fmt.Sprintf("%s/events=%d", name, n), func(b *testing.B) {
				g := startGateway(b, gatewayOptions{cfg: Config{MaxInflight: 1024}})
				if counted {
					g.handler.cfg.Tally = runTally(b, g)
				}
				benchHTTP(b, g.handler, body, n)
				// Concurrent requests are coalesced: one message holds one or more.
				if got := g.streamInfo().State.Msgs; got == 0 || got > uint64(b.N) {
					b.Fatalf("stream holds %d messages after %d requests", got, b.N)
				}
			})
		}
	}
}

func benchHTTP(b *testing.B, h http.Handler, body string, events int) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()
	url := srv.URL + "/v1/events"
	b.SetParallelism(16) // 16 concurrent clients per core
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer key-a")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/secs, "req/s")
	b.ReportMetric(float64(b.N*events)/secs, "events/s")
}

// runTally counts accepted events into the counter stream, flushing every
// second, as the gateway binary does, until the benchmark ends.
func runTally(b *testing.B, g *gateway) *ledger.Tally {
	if err := ledger.Ensure(b.Context(), g.js, 1); err != nil {
		b.Fatal(err)
	}
	tally := ledger.NewTally(g.js, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tally.Run(ctx, time.Second) }()
	b.Cleanup(func() { cancel(); <-done })
	return tally
}
