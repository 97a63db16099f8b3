// Package manifest owns the partition manifests: once a tenant's hour can
// receive nothing more, the reader of a consumer that delivered it writes
// the hour's _manifest.json once (If-None-Match), listing every object, and
// records the hours still open in SLUICE_HOURS. It reads object metadata,
// keys and the events stream; it must not write data objects, nor ack or
// fetch messages.
package manifest
