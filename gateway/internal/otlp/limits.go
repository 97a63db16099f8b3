package otlp

import "github.com/sluice-ingest/sluice/gateway/internal/decode"

// Limits are those of the JSON path, and mean the same here:
// MaxDecodedBytes bounds the body after decompression and also the NDJSON
// its records map to (the message published), MaxEvents the log records,
// and MaxDepth the nesting of objects and arrays in one mapped event,
// counted from the event itself.
type Limits = decode.Limits
