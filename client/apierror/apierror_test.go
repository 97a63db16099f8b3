package apierror

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestCatalogueCodesAreDistinct(t *testing.T) {
	seen := map[Code]bool{}
	for _, e := range Catalogue() {
		if seen[e.Code] {
			t.Errorf("%s appears twice", e.Code)
		}
		seen[e.Code] = true
		if e.Code.Status() != e.Status || e.Status < 400 {
			t.Errorf("%s: status %d, Status() %d", e.Code, e.Status, e.Code.Status())
		}
	}
	if Code("nope").Known() {
		t.Error("an unknown code is known")
	}
}

// The table of refusals in docs/api.md (section Errors) lists exactly the
// catalogue: every code under its status, none missing, none extra.
func TestDocTableMatchesCatalogue(t *testing.T) {
	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	const head = "| status | `error` | when |"
	_, table, ok := strings.Cut(string(doc), head+"\n|---|---|---|\n")
	if !ok {
		t.Fatalf("docs/api.md has no table starting %q", head)
	}
	table, _, _ = strings.Cut(table, "\n\n")
	code := regexp.MustCompile("`([a-z_]+)`")
	var got []Entry
	for _, row := range strings.Split(table, "\n") {
		cells := strings.Split(row, "|")
		if len(cells) < 4 {
			t.Fatalf("row %q is not | status | codes | when |", row)
		}
		status, err := strconv.Atoi(strings.TrimSpace(cells[1]))
		if err != nil {
			t.Fatalf("row %q: status: %v", row, err)
		}
		for _, m := range code.FindAllStringSubmatch(cells[2], -1) {
			got = append(got, Entry{Code(m[1]), status})
		}
	}
	want := Catalogue()
	byCode := func(a, b Entry) int { return strings.Compare(string(a.Code), string(b.Code)) }
	slices.SortFunc(got, byCode)
	slices.SortFunc(want, byCode)
	if !slices.Equal(got, want) {
		t.Errorf("docs/api.md table:\n%v\ncatalogue:\n%v", got, want)
	}
}
