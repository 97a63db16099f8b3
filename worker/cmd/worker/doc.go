// Command worker drains the Sluice stream into S3: it pulls from the durable
// consumer, gathers events into objects per tenant and hour, uploads them compressed
// and acknowledges messages only after their object is stored. It owns the
// process: settings, wiring, the run.Group of actors and the shutdown
// order; it must not hold pipeline logic, which lives in worker/internal.
package main
