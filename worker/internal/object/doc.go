// Package object gathers messages into open objects, one per tenant, hour,
// stream incarnation and partition (and one per stored object whose
// redelivered messages are being regathered), and says when an object must
// be cut: when its uncompressed bytes, its event count or its age reaches a
// limit. It owns no I/O: it neither uploads nor acknowledges.
package object
