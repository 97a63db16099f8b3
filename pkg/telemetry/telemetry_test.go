package telemetry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminProbes(t *testing.T) {
	var broken atomic.Bool
	reg := NewRegistry()
	a, err := NewAdmin("127.0.0.1:0", reg, func(context.Context) error {
		if broken.Load() {
			return errors.New("nats not connected")
		}
		return nil
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	go a.Serve()
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	base := "http://" + a.Addr()

	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("healthz %d", code)
	}
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("readyz %d while ready", code)
	}
	broken.Store(true)
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "nats not connected") {
		t.Errorf("readyz %d %s while not ready", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("healthz %d: liveness must not follow readiness", code)
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("metrics %d", code)
	}
	if code, _ := get(t, base+"/debug/pprof/"); code != 404 {
		t.Errorf("pprof served without the flag: %d", code)
	}
}

func TestLogger(t *testing.T) {
	var b bytes.Buffer
	log, err := LogSettings{Level: "warn", Format: "json"}.Logger(&b, "gateway")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown")
	if out := b.String(); strings.Contains(out, "hidden") || !strings.Contains(out, `"component":"gateway"`) {
		t.Errorf("log output %s", out)
	}
	if _, err := NewLogger(&b, "xml", "info"); err == nil {
		t.Error("bad format accepted")
	}
}
