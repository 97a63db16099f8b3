// Package decode turns a /v1/events request body into the NDJSON message body
// that is published, one compact JSON object per line. It owns the accepted
// shapes, content types and encodings (identity, gzip, zstd). It streams the
// body through body.Lexer, so every limit is checked as it reads and memory,
// charged to body.Budget (body.ErrBusy past it), never follows a hostile
// body's size. Every refusal is a *body.Error. It must not publish,
// authenticate or know about tenants.
package decode
