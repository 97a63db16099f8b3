package e2e

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/limiter/proctest"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
)

// quickstartMark precedes each fenced block of the README that
// TestQuickstart runs.
const quickstartMark = "<!-- quickstart -->"

// quickstartRetry is how long a command may keep failing: objects land
// within the dev stack's batch age (3s) of their request.
const quickstartRetry = 30 * time.Second

// devPorts are the dev stack's default ports, as the README writes them,
// with the sluice-dev variable that moves each.
var devPorts = map[string]string{
	"8080": "SLUICE_DEV_HTTP_PORT",
	"9090": "SLUICE_DEV_ADMIN_PORT",
	"9091": "SLUICE_DEV_WORKER_ADMIN_PORT",
	"4222": "SLUICE_DEV_NATS_PORT",
	"9000": "SLUICE_DEV_S3_PORT",
	"6379": "SLUICE_DEV_REDIS_PORT",
}

// step is one command of the quick start and the output lines the README
// shows under it (as "# line", where … stands for anything).
type step struct {
	cmd  string
	want []*regexp.Regexp
}

// quickstartSteps reads the commands of every block marked quickstartMark:
// a line ending in \ goes on on the next, and each "# " line right under a
// command is a line of its output.
func quickstartSteps(readme string) ([]step, error) {
	var steps []step
	blocks := strings.Split(readme, quickstartMark+"\n")
	for _, b := range blocks[1:] {
		body, ok := strings.CutPrefix(strings.TrimLeft(b, "\n"), "```sh\n")
		if !ok {
			return nil, fmt.Errorf("%s is not followed by a ```sh block", quickstartMark)
		}
		body, _, ok = strings.Cut(body, "```\n")
		if !ok {
			return nil, errors.New("a quick start block does not end")
		}
		var cmd strings.Builder
		for line := range strings.SplitSeq(strings.TrimSuffix(body, "\n"), "\n") {
			switch {
			case cmd.Len() > 0:
				cmd.WriteString("\n" + line)
			case strings.HasPrefix(line, "# ") && len(steps) > 0:
				want := regexp.QuoteMeta(strings.TrimPrefix(line, "# "))
				last := &steps[len(steps)-1]
				last.want = append(last.want, regexp.MustCompile(strings.ReplaceAll(want, "…", ".*")))
				continue
			case strings.TrimSpace(line) == "":
				continue
			default:
				cmd.WriteString(line)
			}
			if !strings.HasSuffix(line, `\`) {
				steps = append(steps, step{cmd: cmd.String()})
				cmd.Reset()
			}
		}
	}
	if len(steps) == 0 {
		return nil, fmt.Errorf("the README has no block marked %s", quickstartMark)
	}
	return steps, nil
}

// TestQuickstart runs the README's quick start against the stack `make
// run` starts: the real sluice-dev with the gateway and worker binaries,
// in a directory laid out like the repository root after `make run`
// (bin/, .bin/, the Makefile, .sluice/). Each command runs with bash there
// as written, but for the dev stack's default ports, moved to free ones
// (and SLUICE_NATS_URL set to match, for bin/sluice). A command that fails,
// or whose output lacks a line shown under it, is retried for
// quickstartRetry, then fails the test with its output. Commands that need
// .bin/nats are skipped, saying so, when `make nats-cli` cannot build it.
func TestQuickstart(t *testing.T) {
	steps, err := quickstartSteps(string(repoFile(t, "README.md")))
	if err != nil {
		t.Fatal(err)
	}
	versitygw, err := devstack.FindBinary("versitygw", "SLUICE_VERSITYGW")
	if errors.Is(err, devstack.ErrNotFound) {
		proctest.Missing(t, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	root, err := devstack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := quickstartDir(t, root)
	natsErr := buildNATSCLI(root)

	env := map[string]string{
		"SLUICE_DEV_DIR":     filepath.Join(dir, ".sluice"),
		"SLUICE_DEV_BIN_DIR": filepath.Join(dir, "bin"),
		"SLUICE_VERSITYGW":   versitygw,
	}
	var ports []string
	for def, v := range devPorts {
		port, err := devstack.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		env[v] = strconv.Itoa(port)
		ports = append(ports, "127.0.0.1:"+def, "127.0.0.1:"+env[v])
	}
	moved := strings.NewReplacer(ports...)
	dev := devtest.Start(t, "sluice-dev", filepath.Join(dir, "bin", "sluice-dev"), env)
	devtest.WaitReady(t, dev, "http://127.0.0.1:"+env["SLUICE_DEV_ADMIN_PORT"]+"/readyz")
	devtest.WaitReady(t, dev, "http://127.0.0.1:"+env["SLUICE_DEV_WORKER_ADMIN_PORT"]+"/readyz")

	shellEnv := []string{"SLUICE_NATS_URL=nats://127.0.0.1:" + env["SLUICE_DEV_NATS_PORT"]}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			shellEnv = append(shellEnv, kv)
		}
	}
	for _, s := range steps {
		if natsErr != nil && (strings.Contains(s.cmd, ".bin/nats") || strings.Contains(s.cmd, "make nats-cli")) {
			t.Logf("SKIPPED (make nats-cli failed: %v): %s", natsErr, s.cmd)
			continue
		}
		cmd := moved.Replace(s.cmd)
		out, err := runStep(dir, shellEnv, cmd, s.want)
		if err != nil {
			t.Fatalf("quick start command failed after %s: %v\n$ %s\n%s", quickstartRetry, err, cmd, out)
		}
		t.Logf("$ %s\n%s", cmd, devtest.Tail(out, 8))
	}
}

// runStep runs cmd with bash in dir until it succeeds with every wanted
// line in its output, or quickstartRetry passes.
func runStep(dir string, env []string, cmd string, want []*regexp.Regexp) (string, error) {
	deadline := time.Now().Add(quickstartRetry)
	for {
		c := exec.Command("bash", "-c", cmd)
		c.Dir, c.Env = dir, env
		b, err := c.CombinedOutput()
		out := string(b)
		for _, w := range want {
			if err == nil && !w.MatchString(out) {
				err = fmt.Errorf("no line matches %q", w)
			}
		}
		if err == nil || time.Now().After(deadline) {
			return out, err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// quickstartDir is a directory laid out like the repository root after
// `make run`: bin/ with the binaries it builds (linked, so that another
// build replacing them does not change this test's), .bin/ and the
// Makefile of the repository.
func quickstartDir(t *testing.T, root string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{gatewayPkg, workerPkg, sluicePkg, "github.com/sluice-ingest/sluice/pkg/dev/cmd/sluice-dev"} {
		built := devtest.Binary(t, pkg)
		if err := linkOrCopy(built, filepath.Join(bin, filepath.Base(pkg))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, ".bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".bin", "Makefile"} {
		if err := os.Symlink(filepath.Join(root, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func linkOrCopy(src, dst string) error {
	if os.Link(src, dst) == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// buildNATSCLI runs `make nats-cli` in the repository, which builds the
// pinned NATS CLI into .bin/nats unless it is there; it needs the module
// cache or the network.
func buildNATSCLI(root string) error {
	c := exec.Command("make", "nats-cli")
	c.Dir = root
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, devtest.Tail(string(out), 5))
	}
	return nil
}
