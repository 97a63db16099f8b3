// Command sluice-load drives a gateway for a bounded time, with a fixed
// number of concurrent clients (closed loop) or at a constant rate (open
// loop), and reports requests/s, events/s, latency percentiles and answers
// by status. Each request carries the same body of N events of about the
// given size.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"time"

	"github.com/sluice-ingest/sluice/pkg/config"
	"github.com/sluice-ingest/sluice/pkg/dev/loadgen"
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
	rate        int
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
	cs.Int(&s.concurrency, "SLUICE_LOAD_CONCURRENCY", 32, 1, "concurrent clients (open loop: the most requests in flight)")
	cs.Duration(&s.duration, "SLUICE_LOAD_DURATION", 10*time.Second, time.Millisecond, "how long to send")
	cs.Int(&s.rate, "SLUICE_LOAD_RATE", 0, 0, "open loop: send this many requests/s (at most SLUICE_LOAD_CONCURRENCY in flight), latency from each intended send time; 0: closed loop")
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
	body, err := loadgen.Body(s.events, s.eventBytes, s.gzip)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	hc := loadgen.NewClient(s.concurrency)
	t := loadgen.Target{URL: s.url, Key: s.key, Body: body, Gzip: s.gzip}
	var res loadgen.Result
	if s.rate > 0 {
		res = loadgen.Open(ctx, hc, t, float64(s.rate), s.duration, s.concurrency)
	} else {
		res = loadgen.Closed(ctx, hc, t, s.concurrency, s.duration, s.maxRequests)
	}
	report(stdout, s, res, len(body))
	return nil
}

func report(w io.Writer, s settings, res loadgen.Result, bodyBytes int) {
	ok := res.Statuses["202"]
	sec := res.Elapsed.Seconds()
	fmt.Fprintf(w, "target        %s\n", s.url)
	if s.rate > 0 {
		fmt.Fprintf(w, "open loop     %d requests/s, at most %d in flight, latency from the intended send time\n", s.rate, s.concurrency)
	} else {
		fmt.Fprintf(w, "clients       %d\n", s.concurrency)
	}
	fmt.Fprintf(w, "body          %d events/request, %d body bytes, gzip %v\n", s.events, bodyBytes, s.gzip)
	fmt.Fprintf(w, "duration      %.2fs\n", sec)
	fmt.Fprintf(w, "requests      %d (%.0f/s); 202: %d (%.0f/s)\n", res.Answered(), float64(res.Answered())/sec, ok, float64(ok)/sec)
	fmt.Fprintf(w, "events        %.0f accepted/s\n", float64(ok*s.events)/sec)
	fmt.Fprintf(w, "latency       p50 %s  p90 %s  p99 %s  max %s\n", res.Percentile(0.5), res.Percentile(0.9), res.Percentile(0.99), res.Percentile(1))
	keys := make([]string, 0, len(res.Statuses))
	for k := range res.Statuses {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "status %-6s %d\n", k, res.Statuses[k])
	}
}
