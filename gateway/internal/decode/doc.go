// Package decode turns a request body into the NDJSON message body that is
// published: one compact JSON object per event, one per line. It owns the
// accepted body shapes, content encodings and the size and count limits, and
// reports every refusal as an *Error carrying the HTTP status and code. It
// must not publish, authenticate or know about tenants.
package decode
