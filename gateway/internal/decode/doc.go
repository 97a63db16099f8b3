// Package decode turns a request body of /v1/events into the NDJSON
// message body that is published: one compact JSON object per event, one
// per line. It owns the accepted body shapes, content types and encodings
// (identity, gzip, zstd). It reads the body as a stream through
// body.Lexer, validating and compacting as it goes, so no limit
// (body.Limits) is checked after the fact and memory never follows the
// size of a hostile body: output buffers and zstd windows are charged to
// the body.Budget, and a body that would pass it is refused with
// body.ErrBusy. Every refusal is a *body.Error. It must not publish,
// authenticate or know about tenants.
package decode
