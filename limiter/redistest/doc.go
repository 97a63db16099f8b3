// Package redistest is Sluice's one launcher of redis-server for tests and
// the dev stack: it starts real redis-server processes (a single server, a
// Redis Cluster of masters, a Sentinel watching a server), each on a free
// 127.0.0.1 port with its files in a directory of its own, and can kill,
// restart, pause (SIGSTOP) and resume them for fault tests. The helpers for
// testing.TB stop what they started with t.Cleanup; on Linux every server
// also dies with the process that started it. What it shares with the other
// process helpers (ports, finding binaries, the missing-binary rule, starting
// and stopping processes) is limiter/proctest's. It lives in the limiter
// module because that module depends on nothing but go-redis, and the
// limiter's own tests use it. It must not be imported by production code.
package redistest
