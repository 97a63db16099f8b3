package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/sluice-ingest/sluice/pkg/config"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
)

// 256 clients at once, each sending a zstd body of a few hundred bytes that
// decodes to 0.9 MiB (stored, until the stream is full), then 256 decoding
// to just over 4 MiB (over the decoded limit): every answer is 202, 413 or
// 503, and the gateway's peak RSS stays under the bound it derives from its
// settings, which with the defaults is under 75 % of the gateway pod's
// memory limit in deploy/k8s/gateway.yaml.
func TestMemoryBoundedByCompressedBodies(t *testing.T) {
	env := map[string]string{"SLUICE_AUTH": "none", "SLUICE_STREAM_MAX_BYTES": "64MiB"}
	s, err := parseSettings(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	bound := s.memory().bound()
	if limit := podMemoryLimit(t); bound > limit*3/4 {
		t.Fatalf("the default settings' memory bound %d MiB is over 75%% of the pod's limit (%d MiB)", bound>>20, limit>>20)
	}
	g := startBinaryAt(t, devtest.PlainBinary(t, gatewayPkg), env)
	url := "http://" + g.ingest + "/v1/events"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	for _, tc := range []struct {
		decoded, window int
	}{{9 << 20 / 10, 1 << 20}, {4<<20 + 1<<10, 4 << 20}} {
		body := zstdEvents(t, tc.decoded, tc.window)
		statuses := map[int]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 256 {
			wg.Go(func() {
				<-start
				status := 0
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Encoding", "zstd")
				if resp, err := client.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		for status, n := range statuses {
			if status != http.StatusAccepted && status != http.StatusRequestEntityTooLarge && status != http.StatusServiceUnavailable {
				t.Errorf("%d bytes decoded (%d on the wire): %d answers %d", tc.decoded, len(body), n, status)
			}
		}
		t.Logf("%d bytes decoded (%d on the wire): answers %v", tc.decoded, len(body), statuses)
	}
	peak, err := g.proc.PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("peak RSS %d MiB, bound %d MiB", peak>>20, bound>>20)
	if peak > bound {
		t.Errorf("peak RSS %d MiB is over the bound of %d MiB", peak>>20, bound>>20)
	}
}

// zstdEvents is a JSON array of events of decoded bytes in all, compressed
// as a stream with the given window (as a client that does not know the
// size in advance would).
func zstdEvents(t *testing.T, decoded, window int) []byte {
	t.Helper()
	event := `{"msg":"` + strings.Repeat("x", 1000) + `"}`
	var plain bytes.Buffer
	plain.WriteByte('[')
	for plain.Len()+len(event)+2 < decoded {
		if plain.Len() > 1 {
			plain.WriteByte(',')
		}
		plain.WriteString(event)
	}
	plain.WriteString(strings.Repeat(" ", decoded-plain.Len()-1))
	plain.WriteByte(']')
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out, zstd.WithWindowSize(window))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = zw.Write(plain.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// podMemoryLimit reads the gateway container's memory limit from
// deploy/k8s/gateway.yaml.
func podMemoryLimit(t *testing.T) int64 {
	t.Helper()
	root, err := devstack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(root + "/deploy/k8s/gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`limits: \{memory: (\w+)\}`).FindSubmatch(b)
	if m == nil {
		t.Fatal("deploy/k8s/gateway.yaml: no memory limit")
	}
	n, err := config.ParseBytes(strings.TrimSuffix(string(m[1]), "i") + "iB")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Settings whose memory bound is over the container's limit are refused,
// naming what to lower; the defaults fit a 1 GiB container.
func TestSettingsMustFitTheContainer(t *testing.T) {
	env := map[string]string{"SLUICE_AUTH": "none"}
	s, err := parseSettings(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.checkMemory(1 << 30); err != nil {
		t.Errorf("defaults in 1 GiB: %v", err)
	}
	if err := s.checkMemory(512 << 20); err == nil || !strings.Contains(err.Error(), "SLUICE_MAX_INFLIGHT_BYTES") || !strings.Contains(err.Error(), "512 MiB") {
		t.Errorf("defaults in 512 MiB: err = %v, want one naming the settings and the limit", err)
	}
	if p := s.memory(); p.bound() != 636<<20 {
		t.Errorf("bound with the defaults = %d MiB, docs/api.md says 636", p.bound()>>20)
	}
}

// Against a NATS server taking messages of at most 256 KiB, the gateway
// lowers its decoded limit to that (less room for headers), says so, and
// refuses a body decoding past it with 413 decoded_too_large naming the
// limit, before publishing; a body under it is stored.
func TestDecodedLimitFollowsMaxPayload(t *testing.T) {
	n, err := devstack.StartNATS(devstack.NATSOptions{StoreDir: t.TempDir(), MaxPayload: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Shutdown)
	g := startBinaryOn(t, n, devtest.Binary(t, gatewayPkg), map[string]string{"SLUICE_AUTH": "none"})
	url := "http://" + g.ingest + "/v1/events"
	c := &http.Client{}
	status, a, err := post(t.Context(), c, url, "", "", `[{"a":"`+strings.Repeat("x", 300<<10)+`"}]`)
	if err != nil || status != http.StatusRequestEntityTooLarge || a.Error != "decoded_too_large" || !strings.Contains(a.Message, "261120 bytes") {
		t.Fatalf("300 KiB body: %d %+v %v", status, a, err)
	}
	if status, _, err := post(t.Context(), c, url, "", "", `[{"a":"`+strings.Repeat("x", 200<<10)+`"}]`); err != nil || status != http.StatusAccepted {
		t.Fatalf("200 KiB body: %d %v", status, err)
	}
	if ids := g.batchIDs(t); len(ids) != 1 {
		t.Fatalf("stream holds %d messages, want 1", len(ids))
	}
	if !strings.Contains(g.proc.Output(), "over the NATS max_payload") {
		t.Error("no warning that the decoded limit was lowered")
	}
}
