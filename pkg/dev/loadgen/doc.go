// Package loadgen drives an HTTP ingest endpoint for load tests, bounded in
// time and requests: a closed loop (a fixed number of clients back to back) or
// an open loop (a constant rate, latency from each request's intended send
// time, so a slow server cannot hide its queueing). Ceiling is the reference
// server results are compared with. sluice-load and sluice-bench use it; it
// must never be used by the production binaries.
package loadgen
