// Package otlp owns OTLP/HTTP logs: it decodes an ExportLogsServiceRequest
// (protobuf or OTLP JSON), maps each LogRecord to one compact JSON event (the
// record in OTLP JSON, its resource and scope beside it) of the NDJSON body
// /v1/events publishes, and builds the answers OTLP/HTTP asks for, in the
// request's encoding. Decoding keeps to the JSON path's body.Limits and
// body.Budget, and no length read from the body sizes an allocation
// (docs/decisions.md, The OTLP protobuf is walked in place, not unmarshalled).
// It must not publish, authenticate or know about tenants.
package otlp
