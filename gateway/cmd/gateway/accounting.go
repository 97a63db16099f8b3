package main

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/ledger"
	"github.com/sluice-ingest/sluice/pkg/receipts"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// tallyInterval is how often the accepted counts are flushed to the counter
// stream: what a gateway killed (not stopped) can leave uncounted.
const tallyInterval = time.Second

// ensureAccounting creates (or updates) the receipts bucket the ingest API reads
// and the counter stream the accepted counts go to.
func ensureAccounting(ctx context.Context, js jetstream.JetStream, s stream.Settings) error {
	if _, err := receipts.Ensure(ctx, js, s.ReceiptTTL, s.Replicas); err != nil {
		return err
	}
	return ledger.Ensure(ctx, js, s.Replicas)
}
