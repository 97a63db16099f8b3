// Command sluice-load drives a gateway with a fixed number of concurrent
// clients for a bounded time and reports requests/s, events/s, latency
// percentiles and answers by status. Each request carries the same body of
// N events of about the given size.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/sluice-ingest/sluice/pkg/config"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "sluice-load:", err)
		os.Exit(1)
	}
}

type settings struct {
	url, key    string
	concurrency int
	duration    time.Duration
	maxRequests int
	events      int
	eventBytes  int
	gzip        bool
	allowRemote bool
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var s settings
	cs := config.New("sluice-load", getenv)
	cs.String(&s.url, "SLUICE_LOAD_URL", "http://127.0.0.1:8080/v1/events", "ingest URL")
	cs.String(&s.key, "SLUICE_LOAD_KEY", "", "API key (empty for a gateway with SLUICE_AUTH=none)")
	cs.Int(&s.concurrency, "SLUICE_LOAD_CONCURRENCY", 32, 1, "concurrent clients")
	cs.Duration(&s.duration, "SLUICE_LOAD_DURATION", 10*time.Second, time.Millisecond, "how long to send")
	cs.Int(&s.maxRequests, "SLUICE_LOAD_REQUESTS", 10_000_000, 1, "stop after this many requests")
	cs.Int(&s.events, "SLUICE_LOAD_EVENTS", 1, 1, "events per request")
	cs.Int(&s.eventBytes, "SLUICE_LOAD_EVENT_BYTES", 200, 16, "approximate size of one event")
	cs.Bool(&s.gzip, "SLUICE_LOAD_GZIP", false, "gzip the request bodies")
	cs.Bool(&s.allowRemote, "SLUICE_LOAD_ALLOW_REMOTE", false, "allow a target that is not a loopback address")
	if err := cs.Parse(args, stdout); err != nil {
		return err
	}
	u, err := url.Parse(s.url)
	if err != nil {
		return fmt.Errorf("SLUICE_LOAD_URL: %w", err)
	}
	if ip := net.ParseIP(u.Hostname()); !s.allowRemote && u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("SLUICE_LOAD_URL %s is not a loopback address (set SLUICE_LOAD_ALLOW_REMOTE=true to load a remote gateway)", s.url)
	}
	body, err := makeBody(s.events, s.eventBytes, s.gzip)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, s.duration)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()

	tr := &http.Transport{MaxIdleConnsPerHost: s.concurrency, MaxConnsPerHost: s.concurrency}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var (
		mu       sync.Mutex
		lat      []time.Duration
		statuses = map[string]int{}
		sent     int
		wg       sync.WaitGroup
	)
	next := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if sent >= s.maxRequests {
			return false
		}
		sent++
		return true
	}
	start := time.Now()
	for range s.concurrency {
		wg.Go(func() {
			var myLat []time.Duration
			myStatus := map[string]int{}
			for ctx.Err() == nil && next() {
				t0 := time.Now()
				status := post(ctx, hc, s, body)
				if status == "" {
					break // the run ended mid-request
				}
				myLat = append(myLat, time.Since(t0))
				myStatus[status]++
			}
			mu.Lock()
			lat = append(lat, myLat...)
			for k, v := range myStatus {
				statuses[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	report(stdout, s, lat, statuses, elapsed, len(body))
	return nil
}

func makeBody(events, eventBytes int, gz bool) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"events":[`)
	pad := strings.Repeat("x", max(0, eventBytes-60))
	for i := range events {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"seq":%d,"level":"info","msg":"load test event","pad":"%s"}`, i, pad)
	}
	b.WriteString(`]}`)
	if !gz {
		return b.Bytes(), nil
	}
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	if _, err := w.Write(b.Bytes()); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return z.Bytes(), nil
}

// post sends one request and returns its status code, "error" for a
// transport failure, or "" when the run's context ended.
func post(ctx context.Context, hc *http.Client, s settings, body []byte) string {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if s.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if s.key != "" {
		req.Header.Set("Authorization", "Bearer "+s.key)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ""
		}
		return "error"
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return fmt.Sprint(resp.StatusCode)
}

func report(w io.Writer, s settings, lat []time.Duration, statuses map[string]int, elapsed time.Duration, bodyBytes int) {
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	ok := statuses["202"]
	sec := elapsed.Seconds()
	fmt.Fprintf(w, "target        %s\n", s.url)
	fmt.Fprintf(w, "clients       %d, %d events/request, %d body bytes, gzip %v\n", s.concurrency, s.events, bodyBytes, s.gzip)
	fmt.Fprintf(w, "duration      %.2fs\n", sec)
	fmt.Fprintf(w, "requests      %d (%.0f/s); 202: %d (%.0f/s)\n", len(lat), float64(len(lat))/sec, ok, float64(ok)/sec)
	fmt.Fprintf(w, "events        %.0f accepted/s\n", float64(ok*s.events)/sec)
	fmt.Fprintf(w, "latency       p50 %s  p90 %s  p99 %s  max %s\n", pct(0.5), pct(0.9), pct(0.99), pct(1))
	keys := make([]string, 0, len(statuses))
	for k := range statuses {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "status %-6s %d\n", k, statuses[k])
	}
}
