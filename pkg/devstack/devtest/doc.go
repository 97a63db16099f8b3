// Package devtest wraps devstack for tests: each helper starts a real server
// on a free loopback port under t.TempDir() and stops it with t.Cleanup. A
// missing binary skips the test with its name, except under CI (CI=true),
// where it fails, so a green CI run cannot hide a skipped suite.
package devtest
