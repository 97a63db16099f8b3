package otlp

// Limits bound what one request may carry. A zero field takes its default.
// They mean what they mean for /v1/events: MaxDecodedBytes bounds the body
// after decompression and also the NDJSON its records map to (the message
// published), MaxEvents the log records, and MaxDepth the nesting of
// objects and arrays in one mapped event, counted from the event itself.
type Limits struct {
	MaxBodyBytes    int64 // on the wire
	MaxDecodedBytes int64
	MaxEvents       int
	MaxDepth        int
}

// Defaults of Limits, the same as the JSON path's.
const (
	DefaultMaxBodyBytes    = 1 << 20
	DefaultMaxDecodedBytes = 4 << 20
	DefaultMaxEvents       = 10000
	DefaultMaxDepth        = 64
)

func (l Limits) withDefaults() Limits {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxDecodedBytes <= 0 {
		l.MaxDecodedBytes = DefaultMaxDecodedBytes
	}
	if l.MaxEvents <= 0 {
		l.MaxEvents = DefaultMaxEvents
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	return l
}
