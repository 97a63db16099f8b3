package redistest

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// StartSentinel runs a Redis Sentinel (redis-server --sentinel) that
// monitors master under name with a quorum of 1, stopped at cleanup.
// Clients find the master through its Addr.
func StartSentinel(tb testing.TB, master *Server, name string) *Server {
	tb.Helper()
	dir := tb.TempDir()
	host, port, _ := net.SplitHostPort(master.Addr())
	// Sentinel rewrites its configuration file, so it gets one of its own.
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, []byte("sentinel monitor "+name+" "+host+" "+port+" 1\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	return StartWith(tb, Options{Dir: dir, Config: conf, Args: []string{"--sentinel"}})
}
