// Package body owns what every request body of the gateway shares: the limits
// of one body (wire and decoded bytes, events, nesting), the Budget of bytes
// all decodings in flight hold, the LimitReader enforcing sizes as a body
// streams in, the one JSON Lexer both decoders are built on, and the one
// refusal type, Error, whose code is a client/apierror entry. It must not know
// body shapes, OTLP, HTTP handlers or tenants: the decode and otlp packages
// drive it, and ingest turns an Error into the answer.
package body
