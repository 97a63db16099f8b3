package main

import (
	"io"
	"testing"

	"github.com/sluice-ingest/sluice/pkg/config/configtest"
)

// TestConfigurationDoc holds docs/configuration.md to the settings the
// gateway declares.
func TestConfigurationDoc(t *testing.T) {
	usage := configtest.Help(t, func(args []string, getenv func(string) string, stdout io.Writer) error {
		_, err := parseSettings(args, getenv, stdout)
		return err
	})
	configtest.Check(t, usage, "../../../docs/configuration.md", "Gateway and worker", "Gateway")
}
