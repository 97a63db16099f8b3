// Package ledger is the contract of the counters that reconcile: events
// accepted (by the gateways), landed and dead-lettered (by the workers),
// per tenant and hour, kept in the JetStream counter stream SLUICE_COUNTERS
// (nats-server 2.12+ AllowMsgCounter). It owns the stream, the subjects,
// the de-duplicated increments, the gateways' in-memory aggregation and
// reading the counts back. It must not decide what is counted: the callers
// do, once per batch (package receipts says which outcome a batch counts in).
package ledger
