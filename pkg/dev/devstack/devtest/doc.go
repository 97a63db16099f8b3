// Package devtest wraps devstack for tests: NATS and S3 helpers start a real
// server on a free loopback port under t.TempDir() and stop it with
// t.Cleanup; Redis is limiter/redistest's (redistest.Start, StartCluster,
// StartSentinel). A missing binary follows proctest.Missing, the one rule:
// the test is skipped naming it, or fails when CI is set to anything, so a
// green CI run cannot hide a skipped suite.
package devtest
