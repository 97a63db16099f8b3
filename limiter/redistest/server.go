package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-ingest/sluice/limiter/proctest"
)

// Binary is the server this package runs, and BinaryEnv the variable that
// names its path when it is not in .bin/ or on PATH.
const (
	Binary    = "redis-server"
	BinaryEnv = "SLUICE_REDIS_SERVER"
)

// Options configures one redis-server process.
type Options struct {
	// Binary is the redis-server executable; empty means
	// proctest.FindBinary(Binary, BinaryEnv).
	Binary string
	// Port to listen on at 127.0.0.1; 0 picks a free one.
	Port int
	// Dir is the server's working directory, created if missing; its log
	// is redis.log there.
	Dir string
	// Config is a configuration file given before every other argument
	// (redis-server takes one only there), e.g. a Sentinel's.
	Config string
	// Args are more arguments, after the defaults (so they win).
	Args []string
}

// Server is one redis-server process, without persistence, bound to
// 127.0.0.1.
type Server struct {
	addr string
	dir  string
	argv []string
	// BusPort is the cluster bus port (cluster nodes only).
	BusPort int

	mu   sync.Mutex
	proc *proctest.Process // the current run; nil when none runs
}

// Launch starts redis-server and waits until it answers PING. The caller
// stops it with Stop.
func Launch(ctx context.Context, opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("redis-server: no directory given")
	}
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = proctest.FindBinary(Binary, BinaryEnv); err != nil {
			return nil, err
		}
	}
	var err error
	if opts.Port, err = proctest.PortOrFree(opts.Port); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("redis-server directory: %w", err)
	}
	port := strconv.Itoa(opts.Port)
	s := &Server{addr: net.JoinHostPort("127.0.0.1", port), dir: opts.Dir, argv: []string{bin}}
	if opts.Config != "" {
		s.argv = append(s.argv, opts.Config)
	}
	s.argv = append(s.argv,
		"--bind", "127.0.0.1",
		"--port", port,
		"--dir", opts.Dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--protected-mode", "no",
		"--logfile", filepath.Join(opts.Dir, "redis.log"))
	s.argv = append(s.argv, opts.Args...)
	if err := s.launch(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) launch(ctx context.Context) error {
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Dir = s.dir
	proc, err := proctest.Start(cmd)
	if err != nil {
		return fmt.Errorf("start %s: %w", Binary, err)
	}
	s.mu.Lock()
	s.proc = proc
	s.mu.Unlock()
	if err := s.waitReady(ctx, proc.Done()); err != nil {
		s.Kill()
		return fmt.Errorf("%s on %s not ready: %w\n%s", Binary, s.addr, err, s.Log())
	}
	return nil
}

// waitReady polls PING for up to 10s, until the process exits or ctx ends.
func (s *Server) waitReady(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: s.addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	return proctest.Poll(ctx, 10*time.Millisecond, exited, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if err := c.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("PING: %w", err)
		}
		return nil
	})
}

// Addr is host:port.
func (s *Server) Addr() string { return s.addr }

// URL is the redis:// URL.
func (s *Server) URL() string { return "redis://" + s.addr }

// Dir is the server's working directory.
func (s *Server) Dir() string { return s.dir }

// Log is what the server wrote to its log file so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	return string(b)
}

// Pid is the process id of the running server, 0 when none runs.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.Pid()
}

// String names the server for messages.
func (s *Server) String() string { return Binary + " " + s.addr }

// Kill ends the server with SIGKILL and waits for it to exit.
func (s *Server) Kill() {
	if proc := s.take(); proc != nil {
		proc.Kill()
	}
}

// Stop asks the server to end with SIGTERM and kills it after 5s.
func (s *Server) Stop() {
	if proc := s.take(); proc != nil {
		_ = proc.Stop(syscall.SIGTERM, 5*time.Second)
	}
}

// take detaches the running process (resumed, in case it was paused), or
// returns nil when none runs.
func (s *Server) take() *proctest.Process {
	s.mu.Lock()
	proc := s.proc
	s.proc = nil
	s.mu.Unlock()
	if proc != nil {
		proc.Signal(syscall.SIGCONT)
	}
	return proc
}

// Restart kills the server and starts it again on the same port and
// directory.
func (s *Server) Restart(ctx context.Context) error {
	s.Kill()
	return s.launch(ctx)
}

// Pause stops the server with SIGSTOP: connections stay open, nothing
// answers, like a Redis stuck on a slow disk or a long fork.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.Signal(sig)
	}
}

// Start runs a standalone redis-server for the test with extra arguments,
// in a directory of the test's own, stopped at cleanup (its log is printed
// when the test failed). A missing binary skips or fails the test
// (proctest.Missing).
func Start(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	return StartWith(tb, Options{Dir: tb.TempDir(), Args: extra})
}

// StartWith is Start with every option; Dir empty means a new t.TempDir().
func StartWith(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	s, err := Launch(context.Background(), opts)
	if errors.Is(err, proctest.ErrNotFound) {
		proctest.Missing(tb, err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		s.Stop()
		if tb.Failed() {
			tb.Logf("--- log of %s:\n%s", s, s.Log())
		}
	})
	return s
}

// Client returns a go-redis client for the server, closed when the test
// ends.
func (s *Server) Client(tb testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.addr})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}
