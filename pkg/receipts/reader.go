package receipts

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"
)

// Reader reads receipts, finding the bucket on first use (it may be
// created after the reader).
type Reader struct {
	js jetstream.JetStream
	kv atomic.Pointer[jetstream.KeyValue]
}

// NewReader returns a reader of the bucket through js.
func NewReader(js jetstream.JetStream) *Reader { return &Reader{js: js} }

// Get returns the receipt of the tenant's batch id, or ErrNotFound (also
// while no worker has created the bucket yet).
func (r *Reader) Get(ctx context.Context, tenant, batchID string) (Receipt, error) {
	kv := r.kv.Load()
	if kv == nil {
		b, err := r.js.KeyValue(ctx, Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return Receipt{}, ErrNotFound
		}
		if err != nil {
			return Receipt{}, fmt.Errorf("bucket %s: %w", Bucket, err)
		}
		kv = &b
		r.kv.Store(kv)
	}
	return Get(ctx, *kv, tenant, batchID)
}
