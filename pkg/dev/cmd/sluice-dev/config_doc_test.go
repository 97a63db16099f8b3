package main

import (
	"io"
	"testing"

	"github.com/sluice-ingest/sluice/pkg/config/configtest"
)

// TestConfigurationDoc holds docs/configuration.md to the settings
// sluice-dev declares.
func TestConfigurationDoc(t *testing.T) {
	usage := configtest.Help(t, func(args []string, getenv func(string) string, stdout io.Writer) error {
		return run(t.Context(), args, getenv, stdout)
	})
	configtest.Check(t, usage, "../../../../docs/configuration.md", "sluice-dev (make run)")
}
