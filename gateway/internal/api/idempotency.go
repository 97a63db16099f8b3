package api

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/sluice-ingest/sluice/pkg/envelope"
)

// idempotentBatchID is the batch id, and so the Nats-Msg-Id, of a request
// with an Idempotency-Key: derived from the tenant, the key and a digest of
// the decoded events, so a retry of the same events (however encoded) is
// stored once and other events under the key are a new request
// (docs/decisions.md, A reused Idempotency-Key is stored, not refused). A key
// holds no newline (HTTP forbids it), so key and digest cannot run together.
func idempotentBatchID(tenant, key string, body []byte) string {
	sum := sha256.Sum256(body)
	return envelope.BatchIDFor(tenant, key+"\n"+hex.EncodeToString(sum[:]))
}
