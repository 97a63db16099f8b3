// Command gateway is Sluice's HTTP ingest process: it authenticates, sheds, rate limits
// and validates requests, publishes each one to JetStream and answers 202
// once JetStream acknowledged it. It owns the process: settings, wiring,
// the run.Group of actors and the shutdown order; it must not hold ingest
// logic, which lives in gateway/internal.
package main
