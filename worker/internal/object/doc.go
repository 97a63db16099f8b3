// Package object groups messages into open batches, one per tenant, hour and
// stream incarnation partition (and one per stored object whose redelivered
// messages are being regathered), and says when a batch must be cut: when its
// uncompressed bytes, its event count or its age reaches a limit. It owns
// no I/O: it neither uploads nor acknowledges.
package object
