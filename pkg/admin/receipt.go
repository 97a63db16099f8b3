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

// Found is what is known of a batch: its receipt, or, while its message is
// still in the events stream and nothing landed yet, status pending with
// the message's sequence.
type Found struct {
	Tenant string `json:"tenant"`
	receipts.Receipt
	Seq uint64 `json:"seq,omitempty"`
}

// StatusPending is a batch whose message waits in the events stream.
const StatusPending = "pending"

// FindReceipt looks a batch id up: its receipt in SLUICE_RECEIPTS (of tenant,
// or of any tenant when tenant is empty), else its message among those the
// events stream holds now (read headers only, up to the last one stored
// when it began). It returns receipts.ErrNotFound when neither has it:
// never accepted, expired (SLUICE_RECEIPT_TTL), or another tenant's.
func FindReceipt(ctx context.Context, js jetstream.JetStream, events, tenant, batchID string) ([]Found, error) {
	if !envelope.ValidBatchID(batchID) {
		return nil, fmt.Errorf("%q is not a batch id ([a-z0-9_-]{1,128})", batchID)
	}
	found, err := stored(ctx, js, tenant, batchID)
	if err != nil || len(found) > 0 {
		return found, err
	}
	f, ok, err := waiting(ctx, js, events, tenant, batchID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, receipts.ErrNotFound
	}
	return []Found{f}, nil
}

func stored(ctx context.Context, js jetstream.JetStream, tenant, batchID string) ([]Found, error) {
	kv, err := js.KeyValue(ctx, receipts.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", receipts.Bucket, err)
	}
	tenants := []string{tenant}
	if tenant == "" {
		tenants = nil
		// A request of a coalesced message has its message's receipt.
		key := batchID
		if msgID, _, ok := envelope.SplitBatchID(batchID); ok {
			key = msgID
		}
		keys, err := kv.ListKeysFiltered(ctx, receipts.Key("*", key))
		if err != nil {
			return nil, fmt.Errorf("list receipts of %s: %w", batchID, err)
		}
		for k := range keys.Keys() {
			tenants = append(tenants, k[:len(k)-len(key)-1])
		}
	}
	var found []Found
	for _, t := range tenants {
		r, err := receipts.Get(ctx, kv, t, batchID)
		if errors.Is(err, receipts.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		found = append(found, Found{Tenant: t, Receipt: r})
	}
	return found, nil
}

// waiting reads the messages held in the events stream (of tenant's
// subject, or all) for the batch id, one direct get per message, up to the
// last one stored when it began. (A work-queue stream takes no other
// consumer than the workers', so it is read by sequence.)
func waiting(ctx context.Context, js jetstream.JetStream, events, tenant, batchID string) (Found, bool, error) {
	st, err := js.Stream(ctx, events)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return Found{}, false, fmt.Errorf("%w: %s", ErrStreamMissing, events)
	}
	if err != nil {
		return Found{}, false, fmt.Errorf("stream %s: %w", events, err)
	}
	state := st.CachedInfo().State
	for seq := state.FirstSeq; state.Msgs > 0 && seq <= state.LastSeq; {
		m, err := stream.NextStored(ctx, st, seq, tenant)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return Found{}, false, nil
		}
		if err != nil {
			return Found{}, false, fmt.Errorf("read %s at seq %d: %w", events, seq, err)
		}
		if m.Sequence > state.LastSeq {
			break
		}
		if events, ok := holds(m, batchID); ok {
			t, _ := stream.TenantOf(m.Subject)
			return Found{Tenant: t, Seq: m.Sequence, Receipt: receipts.Receipt{
				BatchID: batchID, Status: StatusPending, Events: events, Objects: []receipts.Object{}}}, true, nil
		}
		seq = m.Sequence + 1
	}
	return Found{}, false, nil
}

// holds reports whether m holds the request batchID (alone, or in a
// coalesced message), with its event count.
func holds(m *jetstream.RawStreamMsg, batchID string) (int, bool) {
	if m.Header.Get(stream.HeaderBatchID) == batchID {
		meta, _ := envelope.MetaOf(m.Subject, m.Header)
		return meta.EventCount, true
	}
	msgID, i, ok := envelope.SplitBatchID(batchID)
	if !ok || m.Header.Get(stream.HeaderMessageID) != msgID {
		return 0, false
	}
	meta, err := envelope.MetaOf(m.Subject, m.Header)
	if err != nil || i >= len(meta.Requests) {
		return 0, false
	}
	return meta.Requests[i].Events, true
}
