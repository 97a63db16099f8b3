package admin

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/ledger"
)

// Mismatched counts the closed tenant-hours among the hours hours before
// now's whose counts differ (accepted is not landed + dead): what the
// reconciliation alert watches. It reads the counters of every tenant
// counted in those hours.
func Mismatched(ctx context.Context, js jetstream.JetStream, events string, hours int, now time.Time, grace time.Duration) (int, error) {
	to := now.UTC().Truncate(time.Hour).Add(-time.Hour)
	from := to.Add(-time.Duration(hours-1) * time.Hour)
	tenants := map[string]bool{}
	for h := from; !h.After(to); h = h.Add(time.Hour) {
		ts, err := ledger.Tenants(ctx, js, h)
		if err != nil {
			return 0, err
		}
		for _, t := range ts {
			tenants[t] = true
		}
	}
	n := 0
	for t := range tenants {
		rows, err := Reconcile(ctx, js, events, t, from, to, now, grace)
		if err != nil {
			return 0, err
		}
		for _, r := range rows {
			if r.Differs() {
				n++
			}
		}
	}
	return n, nil
}
