package api

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/sluice-ingest/sluice/pkg/envelope"
)

// idempotentBatchID is the batch id, and so the Nats-Msg-Id, of a request
// that carries an Idempotency-Key: derived from the tenant, the key and a
// digest of the decoded events. A retry with the same key and the same
// events (however they were encoded or compressed) gets the same id, and
// JetStream stores it once inside the duplicate window. The same key with
// other events gets another id: it is a new request, stored with its own
// batch id, never answered "duplicate" while its events are dropped.
//
// Refusing such a reuse (422) would need the first request's body, and
// SLUICE_EVENTS is a work queue: once the workers stored and acked it, the
// message is gone, so a comparison with it could not be made in every case.
// A key never holds a newline (HTTP forbids it in header values), so the
// key and the hex digest cannot run into each other.
func idempotentBatchID(tenant, key string, body []byte) string {
	sum := sha256.Sum256(body)
	return envelope.BatchIDFor(tenant, key+"\n"+hex.EncodeToString(sum[:]))
}
