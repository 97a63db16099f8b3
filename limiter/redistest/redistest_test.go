package redistest

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// A paused server answers nothing until it is resumed; a killed one
// refuses connections until it is restarted, on the same address.
func TestPauseKillRestart(t *testing.T) {
	s := Start(t)
	c := s.Client(t)
	ping := func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		return c.Ping(ctx).Err()
	}
	if err := ping(); err != nil {
		t.Fatal(err)
	}
	s.Pause()
	if err := ping(); err == nil {
		t.Error("a paused server answered PING")
	}
	s.Resume()
	if err := ping(); err != nil {
		t.Errorf("resumed: %v", err)
	}
	s.Kill()
	if s.Pid() != 0 {
		t.Errorf("killed, pid %d", s.Pid())
	}
	if err := ping(); err == nil {
		t.Error("a killed server answered PING")
	}
	if err := s.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err != nil {
		t.Errorf("restarted: %v", err)
	}
}

// A Sentinel names the master it watches; a cluster's nodes all know each
// other and serve every slot.
func TestSentinelAndCluster(t *testing.T) {
	master := Start(t)
	sentinel := StartSentinel(t, master, "mymaster")
	addr, err := sentinel.Client(t).Do(t.Context(), "SENTINEL", "get-master-addr-by-name", "mymaster").StringSlice()
	if err != nil || len(addr) != 2 || addr[0]+":"+addr[1] != master.Addr() {
		t.Errorf("sentinel's master: %v, %v; want %s", addr, err, master.Addr())
	}
	cl := StartCluster(t, 2)
	c := cl.Client(t)
	for i := range 16 {
		if err := c.Set(t.Context(), fmt.Sprint("k", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range cl.Nodes {
		if k, err := n.Client(t).DBSize(t.Context()).Result(); err != nil || k == 0 {
			t.Errorf("node %s holds %d keys, %v", n, k, err)
		}
	}
}
