package otlp

import (
	"google.golang.org/protobuf/encoding/protowire"
)

// kind is how a field of the OTLP JSON encoding is written and which
// protobuf wire form it becomes.
type kind uint8

const (
	kString  kind = iota // JSON string -> bytes
	kBase64              // base64 string -> bytes
	kHex                 // hex string (trace and span ids) -> bytes
	kBool                // true/false -> varint
	kInt64               // number or decimal string -> varint
	kUint32              // number or decimal string -> varint
	kEnum                // number or the value's name -> varint
	kFixed64             // number or decimal string -> fixed64
	kFixed32             // number or decimal string -> fixed32
	kDouble              // number, decimal string, "NaN", "Infinity", "-Infinity" -> fixed64
	kMessage             // object -> bytes
)

type field struct {
	name     string // lowerCamelCase, for error messages
	num      protowire.Number
	kind     kind
	repeated bool
	msg      *message // kMessage
}

// message is the JSON side of one OTLP message: its fields by the names
// protobuf's JSON mapping accepts (lowerCamelCase and the proto names).
type message struct {
	fields map[string]*field
}

func (m *message) add(camel, proto string, num protowire.Number, k kind, repeated bool, sub *message) {
	f := &field{name: camel, num: num, kind: k, repeated: repeated, msg: sub}
	m.fields[camel] = f
	m.fields[proto] = f
}

func newMessage() *message { return &message{fields: map[string]*field{}} }

// requestSchema is ExportLogsServiceRequest as the OTLP JSON encoding
// writes it. Fields the mapping does not read (entityRefs, the strindex
// fields of profiles) are unknown here and skipped, as protobuf skips them.
var requestSchema = func() *message {
	anyValue, arrayValue, kvList, keyValue := newMessage(), newMessage(), newMessage(), newMessage()
	anyValue.add("stringValue", "string_value", anyString, kString, false, nil)
	anyValue.add("boolValue", "bool_value", anyBool, kBool, false, nil)
	anyValue.add("intValue", "int_value", anyInt, kInt64, false, nil)
	anyValue.add("doubleValue", "double_value", anyDouble, kDouble, false, nil)
	anyValue.add("arrayValue", "array_value", anyArray, kMessage, false, arrayValue)
	anyValue.add("kvlistValue", "kvlist_value", anyKVList, kMessage, false, kvList)
	anyValue.add("bytesValue", "bytes_value", anyBytes, kBase64, false, nil)
	arrayValue.add("values", "values", listValues, kMessage, true, anyValue)
	kvList.add("values", "values", listValues, kMessage, true, keyValue)
	keyValue.add("key", "key", kvKey, kString, false, nil)
	keyValue.add("value", "value", kvValue, kMessage, false, anyValue)

	resource := newMessage()
	resource.add("attributes", "attributes", resourceAttributes, kMessage, true, keyValue)
	resource.add("droppedAttributesCount", "dropped_attributes_count", resourceDropped, kUint32, false, nil)

	scope := newMessage()
	scope.add("name", "name", scopeName, kString, false, nil)
	scope.add("version", "version", scopeVersion, kString, false, nil)
	scope.add("attributes", "attributes", scopeAttributes, kMessage, true, keyValue)
	scope.add("droppedAttributesCount", "dropped_attributes_count", scopeDropped, kUint32, false, nil)

	record := newMessage()
	record.add("timeUnixNano", "time_unix_nano", recordTime, kFixed64, false, nil)
	record.add("observedTimeUnixNano", "observed_time_unix_nano", recordObservedTime, kFixed64, false, nil)
	record.add("severityNumber", "severity_number", recordSeverityNum, kEnum, false, nil)
	record.add("severityText", "severity_text", recordSeverityText, kString, false, nil)
	record.add("body", "body", recordBody, kMessage, false, anyValue)
	record.add("attributes", "attributes", recordAttributes, kMessage, true, keyValue)
	record.add("droppedAttributesCount", "dropped_attributes_count", recordDropped, kUint32, false, nil)
	record.add("flags", "flags", recordFlags, kFixed32, false, nil)
	record.add("traceId", "trace_id", recordTraceID, kHex, false, nil)
	record.add("spanId", "span_id", recordSpanID, kHex, false, nil)
	record.add("eventName", "event_name", recordEventName, kString, false, nil)

	scopeLogs := newMessage()
	scopeLogs.add("scope", "scope", scopeLogsScope, kMessage, false, scope)
	scopeLogs.add("logRecords", "log_records", scopeLogsLogRecords, kMessage, true, record)
	scopeLogs.add("schemaUrl", "schema_url", scopeLogsSchemaURL, kString, false, nil)

	resourceLogs := newMessage()
	resourceLogs.add("resource", "resource", resourceLogsResource, kMessage, false, resource)
	resourceLogs.add("scopeLogs", "scope_logs", resourceLogsScopeLogs, kMessage, true, scopeLogs)
	resourceLogs.add("schemaUrl", "schema_url", resourceLogsSchemaURL, kString, false, nil)

	request := newMessage()
	request.add("resourceLogs", "resource_logs", requestResourceLogs, kMessage, true, resourceLogs)
	return request
}()
