// Package proctest is what every Sluice helper that runs servers as processes
// shares: free 127.0.0.1 ports, FindBinary (the binary's variable, then .bin/,
// then PATH), Missing (skipped, naming the binary; failed when CI is set), a
// Process that dies with its parent on Linux and stops without races, and
// waits for a port or an HTTP 200. It uses the standard library only and lives
// in the limiter module so redistest and pkg/dev share it without a cycle
// (docs/decisions.md, Test Redis servers live in the limiter module). It must
// not be imported by production code.
package proctest
