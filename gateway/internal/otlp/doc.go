// Package otlp owns OTLP/HTTP logs: it decodes an ExportLogsServiceRequest
// sent as application/x-protobuf or application/json (the OTLP JSON
// encoding), maps each LogRecord to one compact JSON event (the record in
// OTLP JSON, with its resource and scope beside it) and writes them as the
// NDJSON body that /v1/events publishes, and it builds the answers the
// OTLP/HTTP specification asks for: an ExportLogsServiceResponse (with
// partial success when some records were refused) and a google.rpc.Status
// for refusals, each in the request's encoding. Decoding is bounded by the
// same limits as the JSON path: the body and the events it maps to stay
// within MaxDecodedBytes, records within MaxEvents, nesting within
// MaxDepth, and no length or count read from the body sizes an allocation.
// It must not publish, authenticate or know about tenants.
package otlp
