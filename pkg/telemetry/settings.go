package telemetry

import (
	"io"
	"log/slog"

	"github.com/sluice-ingest/sluice/pkg/config"
)

// LogSettings choose a process's log level and format.
type LogSettings struct {
	Level  string
	Format string
}

// Declare adds SLUICE_LOG_LEVEL and SLUICE_LOG_FORMAT to cs.
func (l *LogSettings) Declare(cs *config.Set) {
	cs.Enum(&l.Level, "SLUICE_LOG_LEVEL", "info", LogLevels, "log level")
	cs.Enum(&l.Format, "SLUICE_LOG_FORMAT", "json", LogFormats, "log format")
}

// Logger returns the logger of one component writing to w.
func (l LogSettings) Logger(w io.Writer, component string) (*slog.Logger, error) {
	log, err := NewLogger(w, l.Format, l.Level)
	if err != nil {
		return nil, err
	}
	return log.With("component", component), nil
}
