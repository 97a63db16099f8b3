package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Binary is the server this package runs.
const Binary = "redis-server"

// Server is one redis-server process.
type Server struct {
	tb   testing.TB
	Addr string
	// BusPort is the cluster bus port (cluster nodes only).
	BusPort int
	dir     string
	args    []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start runs a standalone redis-server for the test (no persistence).
func Start(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	return start(tb, tb.TempDir(), extra...)
}

func lookBinary(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath(Binary)
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s not found on PATH (CI=true, so this fails instead of skipping): %v", Binary, err)
		}
		tb.Skipf("%s not found on PATH: install it (apt-get install redis-server) to run this test", Binary)
	}
	return path
}

func start(tb testing.TB, dir string, extra ...string) *Server {
	tb.Helper()
	bin := lookBinary(tb)
	port := freePort(tb)
	s := &Server{tb: tb, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir}
	s.args = append([]string{
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--dir", dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--protected-mode", "no",
		"--logfile", filepath.Join(dir, "redis.log"),
	}, extra...)
	s.args = append([]string{bin}, s.args...)
	s.launch()
	tb.Cleanup(s.stop)
	return s
}

func (s *Server) launch() {
	s.tb.Helper()
	cmd := exec.Command(s.args[0], s.args[1:]...)
	cmd.Dir = s.dir
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("start %s: %v", Binary, err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	if err := s.waitReady(10 * time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
		s.tb.Fatalf("%s on %s not ready: %v\n%s", Binary, s.Addr, err, log)
	}
}

func (s *Server) waitReady(limit time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	end := time.Now().Add(limit)
	var err error
	for time.Now().Before(end) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err = c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, not synchronising
	}
	return err
}

// Client returns a go-redis client for the server, closed when the test ends.
func (s *Server) Client(tb testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Kill ends the server with SIGKILL and waits for it to exit.
func (s *Server) Kill() {
	cmd := s.take()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// take detaches the running process (resumed, in case it was paused), or
// returns nil when none runs.
func (s *Server) take() *exec.Cmd {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	return cmd
}

// Restart starts the server again on the same port (after Kill).
func (s *Server) Restart() {
	s.tb.Helper()
	s.Kill()
	s.launch()
}

// Pause stops the server with SIGSTOP: connections stay open, nothing answers.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

func (s *Server) stop() {
	cmd := s.take()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Cluster is a Redis Cluster of masters without replicas.
type Cluster struct {
	Nodes []*Server
}

// StartCluster runs n redis-server processes with cluster mode on, splits
// the 16384 slots evenly with CLUSTER ADDSLOTSRANGE, joins them with
// CLUSTER MEET and waits for cluster_state:ok on every node.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	c := &Cluster{}
	for i := range n {
		dir := filepath.Join(tb.TempDir(), "node"+strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		bus := freePort(tb)
		s := start(tb, dir,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "2000",
			"--cluster-port", strconv.Itoa(bus))
		s.BusPort = bus
		c.Nodes = append(c.Nodes, s)
	}
	ctx := context.Background()
	per := 16384 / n
	for i, s := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr})
		lo, hi := i*per, (i+1)*per-1
		if i == n-1 {
			hi = 16383
		}
		if err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			tb.Fatalf("cluster addslotsrange on %s: %v", s.Addr, err)
		}
		if i > 0 {
			host, port, _ := net.SplitHostPort(c.Nodes[0].Addr)
			if err := cl.Do(ctx, "CLUSTER", "MEET", host, port, c.Nodes[0].BusPort).Err(); err != nil {
				tb.Fatalf("cluster meet %s -> %s: %v", s.Addr, c.Nodes[0].Addr, err)
			}
		}
		_ = cl.Close()
	}
	end := time.Now().Add(30 * time.Second)
	for _, s := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr})
		for {
			info, err := cl.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && knownNodes(info) == n {
				break
			}
			if time.Now().After(end) {
				tb.Fatalf("cluster node %s not ok after 30s: %v\n%s", s.Addr, err, info)
			}
			time.Sleep(50 * time.Millisecond) // polling a condition
		}
		_ = cl.Close()
	}
	return c
}

func knownNodes(info string) int {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "cluster_known_nodes:"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// Addrs lists the nodes' addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr
	}
	return out
}

// Client returns a cluster client, closed when the test ends.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	tb.Cleanup(func() { _ = cl.Close() })
	return cl
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// String names the server for messages.
func (s *Server) String() string { return fmt.Sprintf("redis-server %s", s.Addr) }
