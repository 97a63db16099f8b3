package client

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMEExampleBuilds builds the example program of this folder's
// README.md (its Go block holding package main) as a user's module would,
// with this folder for the SDK, so that it stays one a user can paste.
func TestREADMEExampleBuilds(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var program string
	for _, block := range strings.Split(string(readme), "```go\n")[1:] {
		block, _, _ = strings.Cut(block, "```\n")
		if strings.Contains(block, "\npackage main\n") || strings.HasPrefix(block, "package main\n") {
			program = block
		}
	}
	if program == "" {
		t.Fatal("README.md has no Go block holding package main")
	}

	sdk, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"main.go": program,
		"go.mod": "module example\n\ngo 1.26.0\n\nrequire github.com/sluice-ingest/sluice/client v0.0.0\n\n" +
			"replace github.com/sluice-ingest/sluice/client => " + sdk + "\n",
		"go.sum": string(sum),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"mod", "tidy"}, {"vet", "."}, {"build", "-o", os.DevNull, "."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s\n%s", strings.Join(args, " "), err, out, program)
		}
	}
}
