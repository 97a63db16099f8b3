// Package jsonx is the one JSON string escaper of Sluice, for the code
// that writes JSON by hand on a hot path: the gateway's OTLP events and
// the receipts the workers store. It owns the two escapings they need,
// encoding/json's (Marshal) and the least JSON requires (Minimal), in one
// loop. It must not parse JSON, or allocate but to grow what it appends to.
package jsonx
