package receipts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/envelope"
)

// Bucket is the JetStream KV bucket holding receipts (stream KV_SLUICE_RECEIPTS).
const Bucket = "SLUICE_RECEIPTS"

// DefaultTTL is how long a receipt is kept (SLUICE_RECEIPT_TTL).
const DefaultTTL = 7 * 24 * time.Hour

// Statuses of a receipt.
const (
	StatusLanded       = "landed"
	StatusDeadLettered = "dead_lettered"
)

// ErrNotFound means no receipt is stored for the tenant's batch id.
var ErrNotFound = errors.New("no receipt")

// Object is one stored object holding a batch's events.
type Object struct {
	Key    string `json:"key"`
	Events int    `json:"events"`
}

// Receipt is what became of one batch (one accepted request), as the API
// answers it.
type Receipt struct {
	BatchID string   `json:"batch_id"`
	Status  string   `json:"status"`
	Events  int      `json:"events"`
	Objects []Object `json:"objects"`
	// LandedAt is when the batch first landed; nil when it has not.
	LandedAt *time.Time `json:"landed_at,omitempty"`
	// Error is the dead letter's cause, only while dead-lettered.
	Error string `json:"error,omitempty"`
}

// record is what the bucket stores: the receipt and the outcome that
// created it, in which the ledger counts the batch's events (see Outcome).
type record struct {
	Receipt
	CountedIn string `json:"counted_in"`
	// Requests is Batch.Requests: the record of a coalesced message.
	Requests []int `json:"requests,omitempty"`
}

// Key is the bucket key of a tenant's batch: "<tenant>.<batch_id>". Both
// are validated ids ([a-z0-9_-]), so the key needs no escaping.
func Key(tenant, batchID string) string { return tenant + "." + batchID }

// ObjectOutcome names the landing of a batch in the object stored under key.
func ObjectOutcome(key string) string { return "object:" + shortHash(key) }

// DeadLetterOutcome names the dead letter of the message with stream
// sequence seq of the stream incarnation tag.
func DeadLetterOutcome(tag string, seq uint64) string {
	return "dlq:" + shortHash(fmt.Sprintf("%s/%d", tag, seq))
}

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}

// Config is the bucket's configuration: keys expire ttl after their last
// write.
func Config(ttl time.Duration, replicas int) jetstream.KeyValueConfig {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Sluice receipts: what became of each accepted batch, by tenant and batch id",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
}

// Ensure creates or updates the bucket. Safe to call from several
// processes at once.
func Ensure(ctx context.Context, js jetstream.JetStream, ttl time.Duration, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, Config(ttl, replicas))
	if err != nil {
		return nil, fmt.Errorf("ensure bucket %s: %w", Bucket, err)
	}
	return kv, nil
}

// Get returns the receipt of the tenant's batch id, or ErrNotFound. A
// batch id stored for another tenant is not found: the tenant is part of
// the key. The batch id of a request of a coalesced message
// (envelope.RequestBatchID) is answered from its message's receipt, with
// its own event count.
func Get(ctx context.Context, kv jetstream.KeyValue, tenant, batchID string) (Receipt, error) {
	key, i, request := envelope.SplitBatchID(batchID)
	if !request {
		key = batchID
	}
	e, err := kv.Get(ctx, Key(tenant, key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Receipt{}, ErrNotFound
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("get receipt %s of tenant %s: %w", batchID, tenant, err)
	}
	rec, err := decode(e.Value())
	if err != nil {
		return Receipt{}, fmt.Errorf("receipt %s of tenant %s: %w", batchID, tenant, err)
	}
	if !request {
		return rec.Receipt, nil
	}
	return rec.request(batchID, i)
}

// request is the receipt of request number i of a coalesced message's
// record: its events in each object that holds the message.
func (r record) request(batchID string, i int) (Receipt, error) {
	if i >= len(r.Requests) {
		return Receipt{}, ErrNotFound
	}
	rc := r.Receipt
	rc.BatchID, rc.Events = batchID, r.Requests[i]
	rc.Objects = make([]Object, len(r.Objects))
	for j, o := range r.Objects {
		rc.Objects[j] = Object{Key: o.Key, Events: rc.Events}
	}
	return rc, nil
}
