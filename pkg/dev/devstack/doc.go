// Package devstack starts real servers on this machine for `make run` and for
// integration tests: an embedded NATS server with JetStream (nats-server
// library), a cluster of nats-server processes whose nodes can be killed and
// restarted, an S3-compatible server (versitygw, posix backend with metadata)
// and Redis (redis-server through limiter/redistest, or an embedded
// Redis-protocol server when none is installed). Servers bind to loopback
// only. It must never be used by the production binaries.
package devstack
