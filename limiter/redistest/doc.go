// Package redistest starts real redis-server processes for tests and the
// dev stack (a single server, a Cluster, a Sentinel) on free 127.0.0.1
// ports in directories of their own, and kills, restarts, pauses and
// resumes them. What every process helper shares (ports, binaries, the
// missing-binary rule, starting and stopping) is limiter/proctest's. It
// must not be imported by production code.
package redistest
