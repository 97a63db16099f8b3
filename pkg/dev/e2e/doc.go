// Package e2e holds the end-to-end tests of Sluice: they build the real
// gateway and worker binaries, run them as processes against embedded NATS
// and a real S3-compatible server, and read the objects back. It has no
// non-test code besides this comment.
package e2e
