package main

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/ledger"
	"github.com/sluice-ingest/sluice/pkg/receipts"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/pipeline"
)

// ensureAccounting creates the receipts bucket and the counter stream, retrying
// while NATS is unreachable, and returns what records outcomes into them.
// It returns an error only when ctx ended first.
func ensureAccounting(ctx context.Context, js jetstream.JetStream, s stream.Settings, log *slog.Logger) (pipeline.Recorder, error) {
	var kv jetstream.KeyValue
	err := stream.Retry(ctx, log, "ensure receipts and counters", func(ctx context.Context) error {
		var err error
		if kv, err = receipts.Ensure(ctx, js, s.ReceiptTTL, s.Replicas); err != nil {
			return err
		}
		return ledger.Ensure(ctx, js, s.Replicas)
	})
	if err != nil {
		return nil, err
	}
	return pipeline.Recorded{JS: js, Receipts: receipts.NewWriter(js, kv)}, nil
}
