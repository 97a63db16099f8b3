package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluice-ingest/sluice/pkg/config"
	"github.com/sluice-ingest/sluice/pkg/config/configtest"
)

// TestConfigurationDoc holds docs/configuration.md to the settings the
// worker declares.
func TestConfigurationDoc(t *testing.T) {
	var usage strings.Builder
	if _, err := parseSettings([]string{"-h"}, func(string) string { return "" }, &usage); !errors.Is(err, config.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	configtest.Check(t, usage.String(), "../../../docs/configuration.md", "Gateway and worker", "Worker")
}
