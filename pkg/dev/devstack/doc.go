// Package devstack starts real servers on this machine for `make run` and
// integration tests: an embedded NATS server with JetStream, a nats-server
// cluster whose nodes can be killed and restarted, an S3 server (versitygw,
// posix backend with metadata) and Redis (limiter/redistest, or an embedded
// Redis-protocol server when redis-server is not installed), on loopback only.
// It must never be used by the production binaries.
package devstack
