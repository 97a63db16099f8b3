// Package redistest starts real redis-server processes for tests (a single
// server, a Cluster, a Sentinel) on free ports in directories of their own,
// kills, restarts, pauses and resumes them, and holds what every test
// server helper shares (FreePort, FindBinary, Missing). It lives in the
// limiter module, which depends on nothing but go-redis; it must not be
// imported by production code.
package redistest
