// Package receipts is the contract of the receipts bucket SLUICE_RECEIPTS
// that the worker writes and the gateway and the sluice command read: one
// key per tenant and batch id, its record, how outcomes merge into it, and
// which outcome the batch's events are counted in (so package ledger counts
// each batch once). It must not know about HTTP or batching.
package receipts
