package devtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/devstack"
)

// Missing skips the test because a binary is missing, or fails it under CI.
func Missing(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI must provide it: %v", err)
	}
	t.Skipf("skipped: %v", err)
}

// NATS starts an embedded JetStream server for the test.
func NATS(t testing.TB) *devstack.NATS {
	t.Helper()
	n, err := devstack.StartNATS(devstack.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Shutdown)
	return n
}

// JetStream connects to n and returns the JetStream context; the connection
// closes at cleanup.
func JetStream(t testing.TB, n *devstack.NATS) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// S3 starts versitygw with the bucket devstack.S3Bucket.
func S3(t testing.TB) *devstack.S3 {
	t.Helper()
	s, err := devstack.StartS3(t.Context(), devstack.S3Options{Dir: t.TempDir(), Bucket: devstack.S3Bucket})
	if errors.Is(err, devstack.ErrNotFound) {
		Missing(t, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Redis starts a real redis-server.
func Redis(t testing.TB) *devstack.Redis {
	t.Helper()
	r, err := devstack.StartRedis(t.Context(), devstack.RedisOptions{Dir: t.TempDir()})
	if errors.Is(err, devstack.ErrNotFound) {
		Missing(t, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]string{}
)

// Binary builds a main package of the workspace (e.g.
// "github.com/sluice-ingest/sluice/gateway/cmd/gateway") once per test
// process and returns the executable's path.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "sluice-bin-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	out := filepath.Join(buildDir, filepath.Base(pkg))
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkg)...)
	if root, err := devstack.RepoRoot(); err == nil {
		cmd.Dir = root
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	built[pkg] = out
	return out
}

// Env turns a map into KEY=VALUE pairs appended to a minimal environment.
func Env(m map[string]string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range m {
		env = append(env, fmt.Sprintf("%s=%s", k, v))
	}
	return env
}

// Lines splits NDJSON into non-empty lines.
func Lines(b []byte) []string {
	var out []string
	for l := range strings.SplitSeq(string(b), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func freePort() (int, error) { return devstack.FreePort() }

func itoa(i int) string { return fmt.Sprint(i) }
