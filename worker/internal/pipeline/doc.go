// Package pipeline is the worker's loop: fetch messages from the durable
// consumer within a byte budget, batch them, upload each cut batch on one
// of a bounded set of uploaders and acknowledge its messages only after the
// object is stored. It owns acknowledgement, keep-alives (InProgress),
// retries, dead-lettering (it counts deliveries itself), handing messages
// back when it cannot write, the stream incarnation of every message and
// the regathering of redelivered messages into the batch they were stored
// in; it must not know the object format.
package pipeline
