package ledger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Tenants returns the tenants that have any counter for hour.
func Tenants(ctx context.Context, js jetstream.JetStream, hour time.Time) ([]string, error) {
	st, err := js.Stream(ctx, Stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", Stream, err)
	}
	h := hour.UTC().Format(HourFormat)
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subjectPrefix+"*.*."+h))
	if err != nil {
		return nil, fmt.Errorf("counters of hour %s: %w", h, err)
	}
	seen := map[string]bool{}
	var out []string
	for subj := range info.State.Subjects {
		// sluice.count.<kind>.<tenant>.<hour>
		parts := strings.Split(strings.TrimPrefix(subj, subjectPrefix), ".")
		if len(parts) == 3 && !seen[parts[1]] {
			seen[parts[1]] = true
			out = append(out, parts[1])
		}
	}
	return out, nil
}
