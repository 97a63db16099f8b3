// Package pipeline is the worker's loop: fetch within a byte budget, gather
// open objects, upload each cut one on a bounded set of uploaders, and ack its messages
// only once the object is stored. It owns acks, keep-alives, retries,
// dead-lettering, hand-backs, stream incarnations and the regathering of
// redelivered messages; it must not know the object format.
package pipeline
