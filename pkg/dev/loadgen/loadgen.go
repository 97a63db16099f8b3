package loadgen

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Target is what every request of a run sends.
type Target struct {
	URL  string
	Key  string // sent as a Bearer token when not empty
	Body []byte
	Gzip bool // the body is gzipped: send Content-Encoding: gzip
}

// Result is what a run measured.
type Result struct {
	// Elapsed is the time from the first send to the last answer.
	Elapsed time.Duration
	// Latencies of every answered request (any status), sorted.
	Latencies []time.Duration
	// Statuses counts answers by status code, and "error" for transport
	// failures.
	Statuses map[string]int
}

// Answered is the number of requests that got an HTTP answer.
func (r Result) Answered() int { return len(r.Latencies) }

// OK is the number of 2xx answers.
func (r Result) OK() int {
	n := 0
	for k, v := range r.Statuses {
		if len(k) == 3 && k[0] == '2' {
			n += v
		}
	}
	return n
}

// Percentile is the latency at p (0..1) of the answered requests, 0 when
// none was answered.
func (r Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	return r.Latencies[min(len(r.Latencies)-1, int(p*float64(len(r.Latencies))))]
}

// NewClient returns an HTTP client keeping up to conns connections open to
// one host.
func NewClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			DisableCompression:  true,
		},
		Timeout: 30 * time.Second,
	}
}

// recorder gathers the answers of one run.
type recorder struct {
	mu       sync.Mutex
	lat      []time.Duration
	statuses map[string]int
}

func (r *recorder) add(lat []time.Duration, statuses map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat = append(r.lat, lat...)
	for k, v := range statuses {
		r.statuses[k] += v
	}
}

func (r *recorder) result(elapsed time.Duration) Result {
	slices.Sort(r.lat)
	return Result{Elapsed: elapsed, Latencies: r.lat, Statuses: r.statuses}
}

// Closed runs concurrency clients, each sending its next request as soon as
// the previous one is answered, until duration passes, maxRequests were
// sent, or ctx ends.
func Closed(ctx context.Context, hc *http.Client, t Target, concurrency int, duration time.Duration, maxRequests int) Result {
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var (
		mu   sync.Mutex
		sent int
		wg   sync.WaitGroup
	)
	next := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if sent >= maxRequests {
			return false
		}
		sent++
		return true
	}
	rec := &recorder{statuses: map[string]int{}}
	start := time.Now()
	for range concurrency {
		wg.Go(func() {
			var lat []time.Duration
			statuses := map[string]int{}
			for ctx.Err() == nil && next() {
				t0 := time.Now()
				status := Post(ctx, hc, t)
				if status == "" {
					break // the run ended mid-request
				}
				lat = append(lat, time.Since(t0))
				statuses[status]++
			}
			rec.add(lat, statuses)
		})
	}
	wg.Wait()
	return rec.result(time.Since(start))
}

// Open sends rate requests per second for duration (rate × duration
// requests in all, at most maxInflight at once) and measures each latency
// from the request's intended send time, so a request that waited for a free
// client counts its wait. Requests still unanswered 30s after the last send
// time, or when ctx ends, are given up.
func Open(ctx context.Context, hc *http.Client, t Target, rate float64, duration time.Duration, maxInflight int) Result {
	total := int(rate * duration.Seconds())
	ctx, cancel := context.WithTimeout(ctx, duration+30*time.Second)
	defer cancel()
	due := make(chan time.Time, maxInflight)
	rec := &recorder{statuses: map[string]int{}}
	var wg sync.WaitGroup
	for range maxInflight {
		wg.Go(func() {
			var lat []time.Duration
			statuses := map[string]int{}
			for intended := range due {
				status := Post(ctx, hc, t)
				if status == "" {
					continue // the run was cut short; drain the channel
				}
				lat = append(lat, time.Since(intended))
				statuses[status]++
			}
			rec.add(lat, statuses)
		})
	}
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
dispatch:
	for i := range total {
		intended := start.Add(time.Duration(i) * interval)
		if d := time.Until(intended); d > 0 {
			select {
			case <-ctx.Done():
				break dispatch
			case <-time.After(d):
			}
		}
		select {
		case due <- intended:
		case <-ctx.Done():
			break dispatch
		}
	}
	close(due)
	wg.Wait()
	return rec.result(time.Since(start))
}

// Post sends one request and returns its status code, "error" for a
// transport failure, or "" when ctx ended.
func Post(ctx context.Context, hc *http.Client, t Target) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(t.Body))
	if err != nil {
		return "error"
	}
	req.Header.Set("Content-Type", "application/json")
	if t.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if t.Key != "" {
		req.Header.Set("Authorization", "Bearer "+t.Key)
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
	return strconv.Itoa(resp.StatusCode)
}
