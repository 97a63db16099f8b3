// Package decode turns a request body into the NDJSON message body that is
// published: one compact JSON object per event, one per line. It owns the
// accepted body shapes, content types and encodings (identity, gzip, zstd)
// and the limits (bytes on the wire, bytes after decompression, events,
// nesting depth). It reads the body as a stream, validating and compacting
// as it goes, so no limit is checked after the fact and memory never follows
// the size of a hostile body: all decodings in flight share a budget of
// bytes (output buffers, zstd windows) and a body that would pass it is
// refused with ErrBusy. Every refusal is an *Error carrying the HTTP
// status and code. It must not publish, authenticate or know about tenants.
package decode
