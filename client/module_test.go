package client

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestModuleRequiresOnlyWhatItImports keeps the SDK light for the users
// who `go get` it: its module graph is itself and klauspost/compress, and
// go.mod holds nothing that `go mod tidy` would remove (no server, test
// helper or cloud SDK comes with it).
func TestModuleRequiresOnlyWhatItImports(t *testing.T) {
	goCmd := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	mods := strings.Fields(goCmd("list", "-m", "-f", "{{.Path}}", "all"))
	want := []string{"github.com/sluice-ingest/sluice/client", "github.com/klauspost/compress"}
	if !slices.Equal(mods, want) {
		t.Errorf("go list -m all: %q, want %q", mods, want)
	}
	goCmd("mod", "tidy", "-diff")
}
