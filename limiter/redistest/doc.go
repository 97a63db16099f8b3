// Package redistest is Sluice's one place for test servers that run as
// processes: it starts real redis-server processes (a single server, a
// Redis Cluster of masters, a Sentinel watching a server), each on a free
// 127.0.0.1 port with its files in a directory of its own, and can kill,
// restart, pause (SIGSTOP) and resume them for fault tests. The helpers for
// testing.TB stop what they started with t.Cleanup; on Linux every server
// also dies with the process that started it.
//
// It also holds what every such helper shares, so that each exists once:
// FreePort and FreeAddr, FindBinary (the variable named for the binary, then
// the repository's .bin/, then PATH) and Missing, the one rule for a test
// whose binary is not installed (skipped, naming it; failed when CI is set).
// pkg/devstack builds the dev stack on these. It lives in the limiter module
// because that module depends on nothing but go-redis, and the limiter's own
// tests use it. It must not be imported by production code.
package redistest
