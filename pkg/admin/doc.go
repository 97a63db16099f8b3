// Package admin holds what the sluice command does to a running cluster
// through NATS: it reads the state of the streams and the workers' consumer,
// and lists, replays and purges dead letters. It never creates streams or
// durable consumers, and it must not know about flags or output formats.
package admin
