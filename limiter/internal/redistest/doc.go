// Package redistest starts real redis-server processes for the limiter's
// tests and benchmarks: a single server or a Redis Cluster, each on free
// 127.0.0.1 ports with its files in a temporary directory, stopped when the
// test ends. It can kill, restart, pause (SIGSTOP) and resume a server for
// fault tests. It must not be imported by non-test code. It skips the test
// when redis-server is not on PATH, unless CI=true, where it fails instead.
package redistest
