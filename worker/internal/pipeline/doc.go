// Package pipeline is the worker's loop: pull messages from the durable
// consumer, batch them, upload each batch through the sink and acknowledge
// its messages only after the object is stored. It owns acknowledgement,
// retries and dead-lettering; it must not know the object format.
package pipeline
