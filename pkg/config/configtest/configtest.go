package configtest

import (
	"errors"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-ingest/sluice/pkg/config"
)

var (
	// declared matches a setting's line in config.Set's usage.
	declared = regexp.MustCompile(`(?m)^  (SLUICE_[A-Z0-9_]+) +-`)
	variable = regexp.MustCompile("`(SLUICE_[A-Z0-9_]+)`")
)

// Declared returns the SLUICE_* variables a -h output lists.
func Declared(usage string) []string {
	var names []string
	for _, m := range declared.FindAllStringSubmatch(usage, -1) {
		names = append(names, m[1])
	}
	return names
}

// Documented returns the variables in the first column of the tables under
// each "## <heading>" of md, up to the next "## " heading; missing is the
// first heading md lacks.
func Documented(md string, headings ...string) (names []string, missing string) {
	for _, h := range headings {
		_, section, found := strings.Cut(md, "\n## "+h+"\n")
		if !found {
			return nil, h
		}
		section, _, _ = strings.Cut(section, "\n## ")
		for line := range strings.SplitSeq(section, "\n") {
			cells := strings.Split(line, "|")
			if !strings.HasPrefix(line, "|") || len(cells) < 3 {
				continue
			}
			for _, m := range variable.FindAllStringSubmatch(cells[1], -1) {
				names = append(names, m[1])
			}
		}
	}
	return names, ""
}

// Help is what help prints, given -h as args and no environment; it fails
// t unless help answers config.ErrHelp.
func Help(t testing.TB, help func(args []string, getenv func(string) string, stdout io.Writer) error) string {
	t.Helper()
	var usage strings.Builder
	if err := help([]string{"-h"}, func(string) string { return "" }, &usage); !errors.Is(err, config.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	return usage.String()
}

// Check fails t naming every variable usage declares and the doc's tables
// under headings lack, and every one they list that usage does not declare.
func Check(t testing.TB, usage, docPath string, headings ...string) {
	t.Helper()
	md, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	have := Declared(usage)
	if len(have) == 0 {
		t.Fatalf("no SLUICE_* setting in the -h output:\n%s", usage)
	}
	doc, missing := Documented(string(md), headings...)
	if missing != "" {
		t.Fatalf("%s has no heading %q", docPath, "## "+missing)
	}
	where := docPath + ` under "` + strings.Join(headings, `", "`) + `"`
	for _, v := range have {
		if !slices.Contains(doc, v) {
			t.Errorf("%s is a setting of the binary (-h) and missing from %s", v, where)
		}
	}
	for _, v := range doc {
		if !slices.Contains(have, v) {
			t.Errorf("%s is listed in %s and is no setting of the binary (-h)", v, where)
		}
	}
}
