// Package proctest is what every Sluice helper that runs servers as
// processes shares, written once: free 127.0.0.1 ports, FindBinary (the
// variable named for the binary, then the repository's .bin/, then PATH),
// Missing (the one rule for a test whose binary is not installed: skipped,
// naming it; failed when CI is set), a Process that dies with its parent on
// Linux and is stopped, killed or signalled without races, and the waits
// for a port or an HTTP 200. limiter/redistest, pkg/dev/devstack and its
// devtest build their servers on it. It lives in the limiter module, which
// depends on nothing but go-redis, so that redistest (used by the limiter's
// own tests) and pkg/dev (which imports redistest) share it without a module
// cycle. It depends on the standard library only and must not be imported
// by production code.
package proctest
