// Package body owns what every request body of the gateway shares: the
// limits of one body (bytes on the wire and decoded, events, nesting) and
// the budget of bytes all decodings in flight hold (Budget), the
// LimitReader that enforces the sizes while a body streams in, the one
// JSON lexer both decoders are built on (Lexer: whitespace, strings,
// numbers, literals, nesting, and the compact copy of any value), and the
// one refusal type, Error, whose code is a client/apierror catalogue entry.
// It must not know body shapes, OTLP, HTTP handlers or tenants: the decode
// and otlp packages drive it, and ingest turns an Error into the answer.
package body
