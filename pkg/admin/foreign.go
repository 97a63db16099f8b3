package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/receipts"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// A replayed dead letter is published under the tenant of its DLQ subject
// (what NATS permissions granted its publisher), whatever its headers say.
// Replay refuses, rather than rewrites, a dead letter whose Sluice-Tenant
// names another tenant or whose batch id has another tenant's receipt in
// SLUICE_RECEIPTS, so it stays in the DLQ for someone to look at. It cannot
// see an id whose receipt expired or is not written yet.

// checkForeign returns ErrRefused when dl, of the tenant of its subject,
// carries the metadata meta of another tenant.
func (r *Replayer) checkForeign(ctx context.Context, dl DeadLetter, meta envelope.Meta) error {
	if meta.Tenant != dl.Tenant {
		return fmt.Errorf("%w: its %s %q is not the tenant of its subject %s", ErrRefused, stream.HeaderTenant, meta.Tenant, dl.Subject)
	}
	keys := []string{meta.BatchID}
	if msgID, _, ok := envelope.SplitBatchID(meta.BatchID); ok && !meta.Coalesced() {
		keys = append(keys, msgID)
	}
	kv, err := r.receiptsBucket(ctx)
	if err != nil || kv == nil {
		return err
	}
	for _, key := range keys {
		other, err := otherTenant(ctx, kv, dl.Tenant, key)
		if err != nil {
			return err
		}
		if other != "" {
			return fmt.Errorf("%w: its batch id %s is tenant %s's (%s holds its receipt %s)", ErrRefused, meta.BatchID, other, receipts.Bucket, receipts.Key(other, key))
		}
	}
	return nil
}

// receiptsBucket finds the receipts bucket once; nil when it does not
// exist (no worker has written a receipt yet: no id is anyone's).
func (r *Replayer) receiptsBucket(ctx context.Context) (jetstream.KeyValue, error) {
	if r.receiptsFound {
		return r.receipts, nil
	}
	kv, err := r.dlq.js.KeyValue(ctx, receipts.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", receipts.Bucket, err)
	}
	r.receipts, r.receiptsFound = kv, true
	return kv, nil
}

// otherTenant returns a tenant other than tenant holding a receipt under
// the batch id key, or "".
func otherTenant(ctx context.Context, kv jetstream.KeyValue, tenant, key string) (string, error) {
	keys, err := kv.ListKeysFiltered(ctx, receipts.Key("*", key))
	if err != nil {
		return "", fmt.Errorf("list receipts of %s: %w", key, err)
	}
	other := ""
	for k := range keys.Keys() { // read to the end: the lister stops itself
		if t := k[:len(k)-len(key)-1]; t != tenant && other == "" {
			other = t
		}
	}
	if err := ctx.Err(); err != nil { // the lister ends early, silently
		return "", fmt.Errorf("list receipts of %s: %w", key, err)
	}
	return other, nil
}
