package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluice-ingest/sluice/pkg/config"
	"github.com/sluice-ingest/sluice/pkg/config/configtest"
)

// TestConfigurationDoc holds docs/configuration.md to the settings every
// command of sluice declares.
func TestConfigurationDoc(t *testing.T) {
	var usage strings.Builder
	for _, c := range commands() {
		args := append(strings.Fields(c.name), "-h")
		if err := run(t.Context(), args, func(string) string { return "" }, &usage); !errors.Is(err, config.ErrHelp) {
			t.Fatalf("sluice %s: %v", strings.Join(args, " "), err)
		}
	}
	configtest.Check(t, usage.String(), "../../../docs/configuration.md", "sluice (admin CLI)")
}
