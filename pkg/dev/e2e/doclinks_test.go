package e2e

import (
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
)

// The Markdown files whose links TestDocLinks follows: the README, docs/
// and the modules' own READMEs.
var docFiles = []string{"README.md", "docs/*.md", "client/README.md", "limiter/README.md"}

var (
	mdLink   = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	anchorID = regexp.MustCompile(`<a id="([^"]+)"></a>`)
	fence    = regexp.MustCompile("(?ms)^```.*?^```")
)

// TestDocLinks: every relative link of the docs names a file of the
// repository, and its #anchor a heading (or an <a id>) of that file.
func TestDocLinks(t *testing.T) {
	root, err := devstack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, g := range docFiles {
		m, err := filepath.Glob(filepath.Join(root, g))
		if err != nil || len(m) == 0 {
			t.Fatalf("no file matches %s", g)
		}
		for _, f := range m {
			rel, _ := filepath.Rel(root, f)
			files = append(files, filepath.ToSlash(rel))
		}
	}
	for _, file := range files {
		text := fence.ReplaceAllString(string(repoFile(t, file)), "")
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			target, anchor, _ := strings.Cut(m[1], "#")
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if target == "" {
				target = file
			} else {
				target = path.Join(path.Dir(file), target)
			}
			b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(target)))
			if err != nil {
				t.Errorf("%s links to %s, which is no file of the repository", file, m[1])
				continue
			}
			if anchor != "" && !slices.Contains(docAnchors(string(b)), anchor) {
				t.Errorf("%s links to %s: %s has no heading #%s", file, m[1], target, anchor)
			}
		}
	}
}

// docAnchors are the anchors of md's headings (as headingAnchors makes
// them, outside code blocks) and of its <a id> tags.
func docAnchors(md string) []string {
	anchors := headingAnchors(fence.ReplaceAllString(md, ""))
	for _, m := range anchorID.FindAllStringSubmatch(md, -1) {
		anchors = append(anchors, m[1])
	}
	return anchors
}
