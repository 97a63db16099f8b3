// Package ledger is the contract of the counters that reconcile: events
// accepted, landed and dead-lettered per tenant and hour in the counter
// stream SLUICE_COUNTERS (AllowMsgCounter, nats-server 2.12+). It owns the
// stream, the subjects, de-duplicated increments, the gateways' in-memory
// aggregation (Tally) and reading the counts back; it must not decide what
// is counted: its callers do, once per batch.
package ledger
