// Package otlp owns OTLP/HTTP logs: it decodes an ExportLogsServiceRequest
// sent as application/x-protobuf or application/json (the OTLP JSON
// encoding), maps each LogRecord to one compact JSON event (the record in
// OTLP JSON, with its resource and scope beside it) and writes them as the
// NDJSON body that /v1/events publishes, and it builds the answers the
// OTLP/HTTP specification asks for: an ExportLogsServiceResponse (with
// partial success when some records were refused) and a google.rpc.Status
// for refusals, each in the request's encoding. Decoding is bounded by the
// same body.Limits and body.Budget as the JSON path: the body and the
// events it maps to stay within MaxDecodedBytes, records within MaxEvents,
// the nesting of one mapped event (counted from the event) within
// MaxDepth, and no length or count read from the body sizes an allocation.
//
// The protobuf is walked in place with protowire rather than unmarshalled
// into the go.opentelemetry.io/proto/otlp types (which build the answers
// and the tests' requests): proto.Unmarshal makes a struct of some 100
// bytes for every message, 2 bytes on the wire for an empty one, so a body
// within the limits would hold hundreds of MiB before any count could be
// checked. protojson cannot read OTLP JSON at all (its ids are hex, not
// base64), so a JSON body is translated to the same wire form by
// body.Lexer driven by the OTLP schema, and one mapping serves both
// encodings; the events' strings are escaped by pkg/jsonx.
// It must not publish, authenticate or know about tenants.
package otlp
