package decode

import "github.com/sluice-ingest/sluice/gateway/internal/body"

// The limits and their defaults are package body's: these are the names
// of them that gateway/cmd reads.
type Limits = body.Limits

const (
	DefaultMaxEvents     = body.DefaultMaxEvents
	DefaultMaxDepth      = body.DefaultMaxDepth
	FixedBytesPerRequest = body.FixedBytesPerRequest
)
