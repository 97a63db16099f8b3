package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// soakClient sends requests to the gateways in turn, over every tenant,
// from a few goroutines at a steady pace, until stopped, and records what
// was answered 202. A keyed client sends each request with an
// Idempotency-Key and sends it again (same key, same body, the next
// gateway) until it is answered 202; an unkeyed one sends each once and
// keeps only its 202s.
type soakClient struct {
	name     string
	keyed    bool
	gateways []string // ingest URLs
	tenants  []string // tenant t's API key is "key-"+t
	seed     int64    // makes the idempotency keys of a run its own
	base     int      // request numbers start here, apart from the other client's

	mu       sync.Mutex
	accepted map[int]acceptedReq
	sent     atomic.Int64   // attempts
	failed   atomic.Int64   // attempts not answered 202
	given    atomic.Int64   // requests of the keyed client given up at the deadline
	lastErr  atomic.Value   // string
	errs     map[string]int // failed attempts by kind of answer
}

// run sends from conc goroutines, each one request every pace, until stop
// is closed; a keyed request already sent is retried until giveUp closes.
// The returned func waits for the goroutines.
func (c *soakClient) run(t *testing.T, conc int, pace time.Duration, stop, giveUp <-chan struct{}) func() {
	c.accepted, c.errs = map[int]acceptedReq{}, map[string]int{}
	client := &http.Client{Timeout: 10 * time.Second}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			tick := time.NewTicker(pace) // the load's pace, not a wait for a condition
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				req := c.base + int(next.Add(1))
				tenant := c.tenants[req%len(c.tenants)]
				c.send(t, client, tenant, req, 1+req%10, tick.C, giveUp)
			}
		})
	}
	return wg.Wait
}

// send sends one request; the keyed client tries again on each tick until
// a 202 or giveUp.
func (c *soakClient) send(t *testing.T, client *http.Client, tenant string, req, events int, tick <-chan time.Time, giveUp <-chan struct{}) {
	idem := ""
	if c.keyed {
		idem = fmt.Sprintf("soak-%d-%d", c.seed, req)
	}
	for attempt := 0; ; attempt++ {
		url := c.gateways[(req+attempt)%len(c.gateways)]
		c.sent.Add(1)
		a, err := postKeyed(t, client, url, "key-"+tenant, idem, req, events)
		if err == nil {
			a.tenant = tenant
			c.mu.Lock()
			c.accepted[req] = a
			c.mu.Unlock()
			return
		}
		c.failed.Add(1)
		c.lastErr.Store(err.Error())
		c.mu.Lock()
		c.errs[errKind(err)]++
		c.mu.Unlock()
		if !c.keyed {
			return
		}
		select {
		case <-giveUp:
			c.given.Add(1)
			return
		case <-tick:
		}
	}
}

// refusal is the status and error code of a refused request (postKeyed's
// error text).
var refusal = regexp.MustCompile(`status (\d+): \{"error":"([a-z_]+)"`)

// errKind names what a failed attempt got: a refusal's status and code, or
// what went wrong on the connection.
func errKind(err error) string {
	msg := err.Error()
	if m := refusal.FindStringSubmatch(msg); m != nil {
		return m[1] + " " + m[2]
	}
	for _, k := range []string{"connection refused", "connection reset", "EOF", "Client.Timeout", "bad 202 body"} {
		if strings.Contains(msg, k) {
			return k
		}
	}
	return msg
}

// failures is the failed attempts by kind, e.g. "503 unavailable 12, connection refused 3".
func (c *soakClient) failures() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	kinds := make([]string, 0, len(c.errs))
	for k := range c.errs {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int { return c.errs[b] - c.errs[a] })
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, c.errs[k]))
	}
	return strings.Join(parts, ", ")
}

// events is every event id answered 202, with its tenant.
func (c *soakClient) events() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for _, a := range c.accepted {
		for n := range a.events {
			out[fmt.Sprintf("%s-%d", a.batchID, n)] = a.tenant
		}
	}
	return out
}
