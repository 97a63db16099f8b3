package proctest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Stop ends a process with its signal, or kills one that ignores it after
// the grace period; either way Done is closed and Err says how it ended.
func TestProcessStop(t *testing.T) {
	p, err := Start(exec.Command("sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Exited() || p.Err() != nil || p.Pid() == 0 {
		t.Fatalf("running: exited %v, err %v, pid %d", p.Exited(), p.Err(), p.Pid())
	}
	if err := p.Stop(syscall.SIGTERM, 10*time.Second); err == nil || !p.Exited() {
		t.Errorf("stopped with SIGTERM: err %v, exited %v", err, p.Exited())
	}
	// A shell that ignores SIGTERM keeps it ignored across exec.
	p, err = Start(exec.Command("sh", "-c", `trap "" TERM; exec sleep 30`))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.Stop(syscall.SIGTERM, 200*time.Millisecond)
	if !p.Exited() || time.Since(start) > 5*time.Second {
		t.Errorf("ignoring SIGTERM: exited %v after %s", p.Exited(), time.Since(start))
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done not closed after Stop")
	}
}

// WaitHTTP returns once the URL answers 200, ErrExited when the process
// exits first, and the last answer when ctx ends.
func TestWaitHTTP(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if err := WaitHTTP(t.Context(), srv.URL, time.Millisecond, nil); err != nil || calls.Load() != 3 {
		t.Errorf("ready on the 3rd call: err %v after %d calls", err, calls.Load())
	}

	calls.Store(-1 << 20)
	exited := make(chan struct{})
	close(exited)
	if err := WaitHTTP(t.Context(), srv.URL, time.Millisecond, exited); !errors.Is(err, ErrExited) {
		t.Errorf("process exited: err %v, want ErrExited", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err := WaitHTTP(ctx, srv.URL, time.Millisecond, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "503") {
		t.Errorf("never ready: err %v, want the deadline and the last answer", err)
	}
}
