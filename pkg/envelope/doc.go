// Package envelope owns the shape of one accepted request on its way through
// Sluice: the metadata the gateway puts in JetStream headers (for a message
// of one request, or of several coalesced into one: coalesced.go), the batch
// and event ids, and the line format written to S3
// ({"id","tenant","received_at","data"}). It must not do any I/O.
package envelope
