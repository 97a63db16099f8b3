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

	"github.com/sluice-ingest/sluice/limiter/proctest"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
)

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

// JetStream connects to n (an embedded server or a cluster) and returns the
// JetStream context; the connection closes at cleanup.
func JetStream(t testing.TB, n interface{ URL() string }) (*nats.Conn, jetstream.JetStream) {
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
	if errors.Is(err, proctest.ErrNotFound) {
		proctest.Missing(t, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// NATSCluster starts a cluster of n nats-server processes (the server of the
// module the workspace requires, built without the race detector: it is not
// code under test) under t.TempDir(), stopped at cleanup; their logs are
// printed when the test failed.
func NATSCluster(t testing.TB, n int) *devstack.NATSCluster {
	t.Helper()
	bin := PlainBinary(t, "github.com/nats-io/nats-server/v2")
	c, err := devstack.StartNATSCluster(t.Context(), devstack.NATSClusterOptions{Binary: bin, Dir: t.TempDir(), Nodes: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			for _, node := range c.Nodes() {
				t.Logf("--- log of nats node %s (last lines):\n%s", node.Name, Tail(node.Log(), 60))
			}
		}
	})
	return c
}

var (
	buildMu sync.Mutex
	built   = map[string]string{}
)

// Binary builds a main package of the workspace (e.g.
// "github.com/sluice-ingest/sluice/gateway/cmd/gateway") once per test
// process and returns its path: .bin/test/race or .bin/test/plain under the
// repository root, one per package, so runs reuse them instead of leaving
// binaries in the temp dir. Each build is renamed into place, so a process
// running the previous one is undisturbed.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	return build(t, pkg, raceEnabled)
}

// PlainBinary is Binary without the race detector even under -race: for a
// test that measures the process's memory, which the race detector
// multiplies.
func PlainBinary(t testing.TB, pkg string) string {
	t.Helper()
	return build(t, pkg, false)
}

func build(t testing.TB, pkg string, race bool) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	flavour := "plain"
	args := []string{"build"}
	if race {
		flavour = "race"
		args = append(args, "-race")
	}
	if p, ok := built[flavour+" "+pkg]; ok {
		return p
	}
	root, err := proctest.RepoRoot()
	if err != nil {
		t.Fatalf("build %s: %v", pkg, err)
	}
	dir := filepath.Join(root, ".bin", "test", flavour)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(pkg)
	if major := strings.TrimPrefix(name, "v"); major != name && strings.Trim(major, "0123456789") == "" {
		name = filepath.Base(filepath.Dir(pkg)) // a module's major version suffix: name it by the module
	}
	tmp, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		t.Fatal(err)
	}
	_ = tmp.Close()
	cmd := exec.Command("go", append(args, "-o", tmp.Name(), pkg)...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp.Name())
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	out := filepath.Join(dir, name)
	if err := os.Rename(tmp.Name(), out); err != nil {
		_ = os.Remove(tmp.Name())
		t.Fatal(err)
	}
	built[flavour+" "+pkg] = out
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
