// Package loadgen drives an HTTP ingest endpoint for load tests: a closed
// loop (a fixed number of clients sending back to back) or an open loop (a
// constant rate, latency measured from each request's intended send time, so
// a slow server cannot hide its queueing). Every run is bounded in time and
// in requests. Ceiling is the reference server results are compared with.
// It is used by sluice-load and sluice-bench; it must never be used by the
// production binaries.
package loadgen
