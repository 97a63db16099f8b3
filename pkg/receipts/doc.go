// Package receipts is the contract of the receipts bucket, shared by the
// worker (which writes them), the gateway (GET /v1/receipts/{batch_id}) and
// the sluice command: the JetStream KV bucket SLUICE_RECEIPTS, one key per
// tenant and batch id, the record stored under it, and how outcomes merge
// into it. The record also says which outcome the batch's events were
// counted in, so the counters of package ledger count each batch once
// however often it is written. It must not know about HTTP or batching.
package receipts
