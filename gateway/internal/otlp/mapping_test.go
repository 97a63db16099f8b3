package otlp

import (
	"bytes"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"

	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

func str(s string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
}

func kv(k string, v *commonpb.AnyValue) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: v}
}

var (
	traceID = []byte{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c}
	spanID  = []byte{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74}
)

// fullRequest has one resource, one scope and two records: one with every
// field set, one with none.
func fullRequest() *collogspb.ExportLogsServiceRequest {
	body := &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{
		kv("msg", str("line \"one\"\n")),
		kv("n", &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: -9007199254740993}}),
		kv("ok", &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}),
		kv("ratio", &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 0.25}}),
		kv("nan", &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: math.NaN()}}),
		kv("raw", &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{0, 1, 0xfe}}}),
		kv("list", &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{
			str("a"), {}, {Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{}}},
		}}}}),
		kv("empty", nil),
	}}}}
	return &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		Resource: &resourcepb.Resource{
			Attributes:             []*commonpb.KeyValue{kv("service.name", str("checkout"))},
			DroppedAttributesCount: 1,
		},
		SchemaUrl: "https://opentelemetry.io/schemas/1.26.0",
		ScopeLogs: []*logspb.ScopeLogs{{
			Scope: &commonpb.InstrumentationScope{Name: "app/log", Version: "1.2.3",
				Attributes: []*commonpb.KeyValue{kv("lib", str("slog"))}, DroppedAttributesCount: 2},
			SchemaUrl: "https://example.com/scope",
			LogRecords: []*logspb.LogRecord{{
				TimeUnixNano:           1700000000123456789,
				ObservedTimeUnixNano:   1700000000987654321,
				SeverityNumber:         logspb.SeverityNumber_SEVERITY_NUMBER_WARN,
				SeverityText:           "WARN",
				Body:                   body,
				Attributes:             []*commonpb.KeyValue{kv("http.status", &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 503}}), kv("é", str("ü"))},
				DroppedAttributesCount: 3,
				Flags:                  1,
				TraceId:                traceID,
				SpanId:                 spanID,
				EventName:              "checkout.failed",
			}, {}},
		}},
	}}}
}

const fullEvent = `{"timeUnixNano":"1700000000123456789","observedTimeUnixNano":"1700000000987654321",` +
	`"severityNumber":13,"severityText":"WARN","body":{"kvlistValue":{"values":[` +
	`{"key":"msg","value":{"stringValue":"line \"one\"\n"}},` +
	`{"key":"n","value":{"intValue":"-9007199254740993"}},` +
	`{"key":"ok","value":{"boolValue":true}},` +
	`{"key":"ratio","value":{"doubleValue":0.25}},` +
	`{"key":"nan","value":{"doubleValue":"NaN"}},` +
	`{"key":"raw","value":{"bytesValue":"AAH+"}},` +
	`{"key":"list","value":{"arrayValue":{"values":[{"stringValue":"a"},{},{"arrayValue":{}}]}}},` +
	`{"key":"empty"}]}},` +
	`"attributes":[{"key":"http.status","value":{"intValue":"503"}},{"key":"é","value":{"stringValue":"ü"}}],` +
	`"droppedAttributesCount":3,"flags":1,"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",` +
	`"eventName":"checkout.failed",` +
	`"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}],"droppedAttributesCount":1,"schemaUrl":"https://opentelemetry.io/schemas/1.26.0"},` +
	`"scope":{"name":"app/log","version":"1.2.3","attributes":[{"key":"lib","value":{"stringValue":"slog"}}],"droppedAttributesCount":2,"schemaUrl":"https://example.com/scope"}}`

const emptyEvent = `{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}],"droppedAttributesCount":1,"schemaUrl":"https://opentelemetry.io/schemas/1.26.0"},` +
	`"scope":{"name":"app/log","version":"1.2.3","attributes":[{"key":"lib","value":{"stringValue":"slog"}}],"droppedAttributesCount":2,"schemaUrl":"https://example.com/scope"}}`

// Every field of a record, its resource and its scope lands in its event
// under its OTLP JSON name, from either encoding, compressed or not.
func TestMapping(t *testing.T) {
	d := newDecoder(body.Limits{})
	req := fullRequest()
	want := fullEvent + "\n" + emptyEvent + "\n"
	for _, tt := range []struct {
		name string
		body []byte
		enc  Encoding
		ce   string
	}{
		{"protobuf", mustProto(t, req), Protobuf, ""},
		{"protobuf gzip", gzipped(mustProto(t, req)), Protobuf, "gzip"},
		{"json", otlpJSON(t, req), JSON, ""},
		{"json gzip", gzipped(otlpJSON(t, req)), JSON, "gzip"},
	} {
		got, b, err := decodeString(t, d, tt.body, tt.enc, tt.ce)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got != want || b.Events != 2 || b.Rejected != 0 {
			t.Errorf("%s: %d events, %d rejected:\n%s\nwant\n%s", tt.name, b.Events, b.Rejected, got, want)
		}
		lines(t, got)
	}
}

// The JSON decoder takes what protobuf's JSON mapping takes beside the
// canonical form: proto field names, enum names, 64-bit integers as
// numbers, null for a field left out, unknown fields.
func TestJSONForms(t *testing.T) {
	d := newDecoder(body.Limits{})
	body := `{"resource_logs":[{"resource":null,"scope_logs":[{"log_records":[
	  {"time_unix_nano":1700000000000000001,"severity_number":"SEVERITY_NUMBER_INFO","severityText":"INFO",
	   "trace_id":"5B8EFFF798038103D269B633813FC60C","span_id":"",
	   "body":{"double_value":"Infinity"},"attributes":[{"key":"k","value":{"int_value":7}}],
	   "futureField":{"nested":[1,2.5e3,"x",true,false,null]}, "flags":"256"}]}]}],"extra":1}`
	got, _, err := decodeString(t, d, []byte(body), JSON, "")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"timeUnixNano":"1700000000000000001","severityNumber":9,"severityText":"INFO","body":{"doubleValue":"Infinity"},` +
		`"attributes":[{"key":"k","value":{"intValue":"7"}}],"flags":256,"traceId":"5b8efff798038103d269b633813fc60c"}` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// Records that cannot become a faithful event are refused one by one and
// counted; the others are kept. When none is left the request is refused.
func TestPartialSuccess(t *testing.T) {
	d := newDecoder(body.Limits{})
	good := &logspb.LogRecord{SeverityText: "ok"}
	req := &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{
			good,
			{TraceId: []byte{1, 2, 3}},
			good,
			{SpanId: make([]byte, 16)},
		}}},
	}}}
	got, b, err := decodeString(t, d, mustProto(t, req), Protobuf, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(lines(t, got)) != 2 || b.Events != 2 || b.Rejected != 2 || b.Reason != "traceId must be 16 bytes, got 3" {
		t.Errorf("%+v: %s", b, got)
	}
	// Invalid UTF-8 in a protobuf string refuses the record (protobuf's
	// decoders would refuse the request); in a resource, all its records.
	// (proto.Marshal refuses to write it, so "ZZ" is replaced after.)
	bad := bytes.ReplaceAll(mustProto(t, &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{good}}},
	}, {
		Resource:  &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kv("k", str("ZZ"))}},
		ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{good, good}}},
	}}}), []byte("ZZ"), []byte{0xff, 0xfe})
	_, b, err = decodeString(t, d, bad, Protobuf, "")
	if err != nil || b.Events != 1 || b.Rejected != 2 || b.Reason != "stringValue is not valid UTF-8" {
		t.Errorf("%+v, %v", b, err)
	}
	allBad := mustProto(t, &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{{SpanId: []byte{1}}}}},
	}}})
	_, _, err = decodeString(t, d, allBad, Protobuf, "")
	wantError(t, "all refused", err, http.StatusBadRequest, "malformed_body", "spanId must be 8 bytes")
}

// An empty request is valid OTLP: it maps to no event.
func TestEmptyRequest(t *testing.T) {
	d := newDecoder(body.Limits{})
	for _, tt := range []struct {
		body []byte
		enc  Encoding
	}{{nil, Protobuf}, {[]byte(`{}`), JSON}, {[]byte(`{"resourceLogs":[{"scopeLogs":[{}]}]}`), JSON}} {
		got, b, err := decodeString(t, d, tt.body, tt.enc, "")
		if err != nil || got != "" || b.Events != 0 || b.Rejected != 0 {
			t.Errorf("%q: %q %+v %v", tt.body, got, b, err)
		}
	}
}

func wantError(t *testing.T, name string, err error, status int, code, inMessage string) {
	t.Helper()
	var e *body.Error
	if !errors.As(err, &e) {
		t.Errorf("%s: error %v, want *body.Error %d %s", name, err, status, code)
		return
	}
	if e.Status() != status || string(e.Code) != code || !strings.Contains(e.Message, inMessage) {
		t.Errorf("%s: %d %s %q, want %d %s containing %q", name, e.Status(), e.Code, e.Message, status, code, inMessage)
	}
}
