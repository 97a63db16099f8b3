package ratelimit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/limiter/redistest"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
)

const gatewayPkg = "github.com/sluice-ingest/sluice/gateway/cmd/gateway"

// gatewayProc is a gateway binary started by a test.
type gatewayProc struct {
	proc       *devtest.Proc
	url, admin string
}

// Two gateway processes sharing one Redis admit, together, what the policy
// allows: for a tenant at 200/s with a burst of 100, offered three times its
// rate through both gateways for five one-second windows, the 202s are at
// most rate × elapsed + burst and at least 98 % of it. elapsed runs from
// before the first request was sent to after the last answer came, so the
// upper bound is strict; the lower one leaves 2 % for the time between the
// ends of that bracket and the first and last decisions.
func TestTwoGatewaysShareOnePolicy(t *testing.T) {
	const (
		rate, burst = 200, 100
		windows     = 5
		workers     = 8 // 4 per gateway
		offered     = 3 * rate
	)
	keys := filepath.Join(t.TempDir(), "keys")
	writeFile(t, keys, fmt.Sprintf("key-a acme %d/s,burst=%d\nkey-w warmup\n", rate, burst))
	// A decision Redis did not make would be a free admission (open) or a
	// lost one (closed): closed makes it visible as a 503, and a generous
	// deadline keeps a busy machine from causing any.
	gws := startGateways(t, 2, redistest.Start(t).URL(), keys, map[string]string{
		"SLUICE_LIMITER_ON_ERROR": "closed",
		"SLUICE_LIMITER_DEADLINE": "500ms",
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 10 * time.Second}

	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		perGW    = make([]int, len(gws))
		wg       sync.WaitGroup
	)
	interval := time.Duration(workers) * time.Second / offered
	start := time.Now()
	end := start.Add(windows * time.Second)
	for w := range workers {
		gi := w % len(gws)
		wg.Go(func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for time.Now().Before(end) {
				st := postStatus(t.Context(), client, gws[gi].url, "key-a")
				mu.Lock()
				statuses[st]++
				if st == http.StatusAccepted {
					perGW[gi]++
				}
				mu.Unlock()
				<-tick.C
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	admitted := statuses[http.StatusAccepted]
	bound := rate*elapsed.Seconds() + burst
	t.Logf("two gateways, %d/s burst %d, %d requests/s offered for %s: %d admitted (%d + %d), bound rate × elapsed + burst = %.1f, ratio %.4f; answers %v",
		rate, burst, offered, elapsed.Round(time.Millisecond), admitted, perGW[0], perGW[1], bound, float64(admitted)/bound, statuses)
	if float64(admitted) > bound {
		t.Errorf("over-admission: %d admitted, bound %.1f", admitted, bound)
	}
	if float64(admitted) < 0.98*bound {
		t.Errorf("under-admission: %d admitted, less than 98%% of %.1f", admitted, bound)
	}
	if statuses[http.StatusTooManyRequests] == 0 || perGW[0] == 0 || perGW[1] == 0 {
		t.Errorf("the load did not exceed the policy through both gateways: %v, per gateway %v", statuses, perGW)
	}
	for st := range statuses {
		if st != http.StatusAccepted && st != http.StatusTooManyRequests {
			t.Errorf("answers other than 202 and 429: %v", statuses)
		}
	}
	// Each gateway's limiter metrics account for its decisions, all made by
	// Redis (warm-up included).
	for i, g := range gws {
		m := scrape(t, g.admin+"/metrics")
		allowed := m[`sluice_gateway_limiter_decisions_total{result="allowed",source="redis"}`]
		if int(allowed) != perGW[i]+5 {
			t.Errorf("gateway %d: %v decisions allowed by Redis, want %d", i, allowed, perGW[i]+5)
		}
		for name, v := range m {
			if strings.HasPrefix(name, "sluice_gateway_limiter_decisions_total") && strings.Contains(name, `source="fallback"`) && v > 0 {
				t.Errorf("gateway %d: %s %v", i, name, v)
			}
		}
	}

	// A keys file with a bad policy is refused on SIGHUP, naming its line,
	// and the previous keys stay.
	writeFile(t, keys, "key-a acme 200/s,burst=100\nkey-b beta 10/fortnight\n")
	gws[0].proc.Signal(syscall.SIGHUP)
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool {
		out := gws[0].proc.Output()
		return strings.Contains(out, "keeping the previous API keys") && strings.Contains(out, "line 2")
	}, "the reload of a keys file with a bad policy was not refused naming line 2")
	if st := postStatus(t.Context(), client, gws[0].url, "key-w"); st != http.StatusAccepted {
		t.Errorf("a previous key after the refused reload: %d", st)
	}
}

// A bad SLUICE_RATE_LIMIT, a bad policy in the keys file or a bad
// SLUICE_REDIS_URL stops the gateway at start with one line naming it (and
// never the Redis password).
func TestGatewayRefusesBadSettings(t *testing.T) {
	bin := devtest.Binary(t, gatewayPkg)
	keys := filepath.Join(t.TempDir(), "keys")
	writeFile(t, keys, "key-a acme 1000/s\nkey-b beta 1000/s,burst=lots\n")
	for _, tt := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"SLUICE_AUTH": "none", "SLUICE_RATE_LIMIT": "fast"}, []string{"SLUICE_RATE_LIMIT", "fast"}},
		{map[string]string{"SLUICE_AUTH": "none", "SLUICE_RATE_LIMIT_COST": "bytes"}, []string{"SLUICE_RATE_LIMIT_COST"}},
		{map[string]string{"SLUICE_AUTH": "none", "SLUICE_LIMITER_ON_ERROR": "ignore"}, []string{"SLUICE_LIMITER_ON_ERROR"}},
		{map[string]string{"SLUICE_API_KEYS_FILE": keys}, []string{"SLUICE_API_KEYS_FILE", "line 2", "burst"}},
		{map[string]string{"SLUICE_AUTH": "none", "SLUICE_REDIS_URL": "redis://:hunter2@h:6379/x", "SLUICE_ADMIN_ADDR": "127.0.0.1:0"},
			[]string{"SLUICE_REDIS_URL redis://:xxxxx@h:6379/x", "database number"}},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		cmd := exec.CommandContext(ctx, bin)
		cmd.Env = devtest.Env(tt.env)
		out, err := cmd.CombinedOutput()
		cancel()
		got := strings.TrimSpace(string(out))
		if err == nil || strings.Contains(got, "\n") || !strings.HasPrefix(got, "gateway: ") || strings.Contains(got, "hunter2") {
			t.Errorf("%v: err %v, output:\n%s\nwant one line", tt.env, err, got)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%v: %q does not say %q", tt.env, got, w)
			}
		}
	}
}

func postStatus(ctx context.Context, c *http.Client, url, key string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"a":1}`))
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// scrape reads a Prometheus text page into series -> value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			m[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
