package otlp

import (
	"bytes"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"testing"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

func records(n int, r func(i int) *logspb.LogRecord) *collogspb.ExportLogsServiceRequest {
	rs := make([]*logspb.LogRecord, n)
	for i := range rs {
		rs[i] = r(i)
	}
	return &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		ScopeLogs: []*logspb.ScopeLogs{{LogRecords: rs}},
	}}}
}

// nested is an AnyValue of n arrays, one in the other.
func nested(n int) *commonpb.AnyValue {
	v := str("x")
	for range n {
		v = &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{v}}}}
	}
	return v
}

// Each limit refuses a request in both encodings with the status and code
// of /v1/events.
func TestLimits(t *testing.T) {
	lim := body.Limits{MaxBodyBytes: 64 << 10, MaxDecodedBytes: 256 << 10, MaxEvents: 3, MaxDepth: 11}
	d := newDecoder(lim)
	plain := func(i int) *logspb.LogRecord { return &logspb.LogRecord{SeverityText: "x"} }
	// Depth 11: the event (1), body (2), then each array takes three
	// levels (arrayValue, values, the element): 3 arrays end at 11 with
	// the string's AnyValue.
	ok := records(1, func(int) *logspb.LogRecord { return &logspb.LogRecord{Body: nested(3)} })
	deep := records(1, func(int) *logspb.LogRecord { return &logspb.LogRecord{Body: nested(4)} })
	big := records(3, func(int) *logspb.LogRecord { return &logspb.LogRecord{Body: str(strings.Repeat("x", 40<<10))} })
	// A resource repeated in every event: small request, large events.
	amplified := records(3, plain)
	amplified.ResourceLogs[0].Resource = &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kv("k", str(strings.Repeat("\x01", 20<<10)))}}
	for _, enc := range []Encoding{Protobuf, JSON} {
		body := func(req *collogspb.ExportLogsServiceRequest) []byte {
			if enc == JSON {
				return otlpJSON(t, req)
			}
			return mustProto(t, req)
		}
		name := enc.ContentType()
		if _, _, err := decodeString(t, d, body(ok), enc, ""); err != nil {
			t.Errorf("%s: depth at the limit: %v", name, err)
		}
		_, _, err := decodeString(t, d, body(records(4, plain)), enc, "")
		wantError(t, name+" events", err, http.StatusRequestEntityTooLarge, "too_many_events", "more than 3 log records")
		_, _, err = decodeString(t, d, body(deep), enc, "")
		wantError(t, name+" depth", err, http.StatusRequestEntityTooLarge, "too_deep", "deeper than")
		_, _, err = decodeString(t, d, body(big), enc, "")
		wantError(t, name+" wire", err, http.StatusRequestEntityTooLarge, "body_too_large", "65536 bytes on the wire")
		_, _, err = decodeString(t, d, gzipped(bytes.Repeat([]byte{0}, 1<<20)), enc, "gzip")
		wantError(t, name+" gzip bomb", err, http.StatusRequestEntityTooLarge, "decoded_too_large", "262144 bytes after decompression")
		_, _, err = decodeString(t, d, gzipped(body(amplified)), enc, "gzip")
		wantError(t, name+" amplified", err, http.StatusRequestEntityTooLarge, "decoded_too_large", "262144 bytes of events")
	}
}

// Bodies that do not decode are refused with 400 and what was wrong.
func TestMalformed(t *testing.T) {
	d := newDecoder(body.Limits{})
	one := mustProto(t, records(1, func(int) *logspb.LogRecord { return &logspb.LogRecord{SeverityText: "x"} }))
	var group []byte
	group = protowire.AppendTag(group, 7, protowire.StartGroupType)
	for _, tt := range []struct {
		name string
		body []byte
		enc  Encoding
		ce   string
		code string
		msg  string
	}{
		{"truncated protobuf", one[:len(one)-1], Protobuf, "", "malformed_body", "unexpected EOF"},
		{"bad tag", []byte{0x00}, Protobuf, "", "malformed_body", "bad field tag"},
		{"group", group, Protobuf, "", "malformed_body", "wire type 3"},
		{"hostile length", protowire.AppendVarint([]byte{0x0a}, 1<<40), Protobuf, "", "malformed_body", "unexpected EOF"},
		{"not gzip", one, Protobuf, "gzip", "malformed_body", "gzip"},
		{"truncated gzip", gzipped(one)[:10], Protobuf, "gzip", "malformed_body", "truncated"},
		{"empty JSON", nil, JSON, "", "empty_body", "empty"},
		{"JSON array", []byte(`[]`), JSON, "", "malformed_body", "must be a JSON object"},
		{"JSON syntax", []byte(`{"resourceLogs":[}`), JSON, "", "malformed_body", "byte 17"},
		{"JSON trailing", []byte(`{} {}`), JSON, "", "malformed_body", "data after"},
		{"JSON wrong type", []byte(`{"resourceLogs":{}}`), JSON, "", "malformed_body", `"resourceLogs"`},
		{"JSON bad hex", []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"zz"}]}]}]}`), JSON, "", "malformed_body", `"traceId" at byte 61: not hex`},
		{"JSON bad enum", []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"LOUD"}]}]}]}`), JSON, "", "malformed_body", "severityNumber"},
		{"JSON big int", []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"intValue":"9223372036854775808"}}]}]}]}`), JSON, "", "malformed_body", "intValue"},
		{"JSON bad UTF-8", []byte("{\"x\":\"\xff\"}"), JSON, "", "malformed_body", "invalid UTF-8"},
		{"unknown encoding", one, Protobuf, "br", "unsupported_encoding", `"br"`},
	} {
		_, _, err := decodeString(t, d, tt.body, tt.enc, tt.ce)
		status := http.StatusBadRequest
		if tt.code == "unsupported_encoding" {
			status = http.StatusUnsupportedMediaType
		}
		wantError(t, tt.name, err, status, tt.code, tt.msg)
	}
	for _, ct := range []string{"text/plain", "application/x-ndjson", "application/json; charset=latin1", "application/protobuf;"} {
		if _, err := EncodingOf(ct); err == nil {
			t.Errorf("%q accepted", ct)
		} else {
			wantError(t, ct, err, http.StatusUnsupportedMediaType, "unsupported_media_type", "application/x-protobuf")
		}
	}
	for ct, want := range map[string]Encoding{"application/x-protobuf": Protobuf, "application/json": JSON,
		"application/json; charset=utf-8": JSON, "Application/X-Protobuf": Protobuf} {
		if got, err := EncodingOf(ct); err != nil || got != want {
			t.Errorf("%q: %v %v", ct, got, err)
		}
	}
}

// No length or count in a body sizes an allocation: decoding hostile
// bodies allocates about what their bytes and the limits allow.
func TestHostileBodiesAllocateLittle(t *testing.T) {
	d := newDecoder(body.Limits{})
	var manyEmpty []byte // 512 KiB of empty AnyValues in one array: 2 bytes each
	values := bytes.Repeat([]byte{0x0a, 0x00}, 1<<18)
	anyv := protowire.AppendTag(nil, anyArray, protowire.BytesType)
	anyv = protowire.AppendBytes(anyv, values)
	rec := protowire.AppendTag(nil, recordBody, protowire.BytesType)
	rec = protowire.AppendBytes(rec, anyv)
	sl := protowire.AppendTag(nil, scopeLogsLogRecords, protowire.BytesType)
	sl = protowire.AppendBytes(sl, rec)
	rl := protowire.AppendTag(nil, resourceLogsScopeLogs, protowire.BytesType)
	rl = protowire.AppendBytes(rl, sl)
	manyEmpty = protowire.AppendTag(nil, requestResourceLogs, protowire.BytesType)
	manyEmpty = protowire.AppendBytes(manyEmpty, rl)
	if err := proto.Unmarshal(manyEmpty, &collogspb.ExportLogsServiceRequest{}); err != nil {
		t.Fatal(err) // the body is valid protobuf
	}
	for _, tt := range []struct {
		name     string
		body     []byte
		events   int
		maxAlloc uint64
	}{
		{"length prefix of 1 TiB", protowire.AppendVarint([]byte{0x0a}, 1<<40), 0, 64 << 10},
		// Its event is 768 KiB ("{}," per value): the body and the output,
		// each grown by doubling, and the test's copy of the output are
		// the allocation, about 7 MiB (proto.Unmarshal allocates 27 MiB
		// for it: a struct and a pointer per value).
		{"a quarter million empty values", manyEmpty, 1, 10 << 20},
	} {
		_, _, _ = decodeString(t, d, tt.body, Protobuf, "") // warm the pool
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, b, err := decodeString(t, d, tt.body, Protobuf, "")
		runtime.ReadMemStats(&after)
		if tt.events > 0 && (err != nil || b.Events != tt.events) {
			t.Errorf("%s: %+v %v", tt.name, b, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > tt.maxAlloc {
			t.Errorf("%s: allocated %d bytes, want at most %d", tt.name, got, tt.maxAlloc)
		}
	}
}

// The buffers of decodings in flight are charged to the Budget: with one
// request of 600 KiB held (its body and its events, some 1.7 MiB of
// buffers), the next is refused with ErrBusy (a 503), and decoded once the
// first is released, which gives back every byte it took.
func TestBudget(t *testing.T) {
	const inflight = 2560 << 10
	budget := body.NewBudget(body.Limits{MaxDecodedBytes: 1 << 20, MaxInflightBytes: inflight})
	d := NewDecoder(budget)
	req := mustProto(t, records(1, func(int) *logspb.LogRecord { return &logspb.LogRecord{Body: str(strings.Repeat("x", 600<<10))} }))
	first, err := d.Decode(bytes.NewReader(req), Protobuf, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Decode(bytes.NewReader(req), Protobuf, ""); !errors.Is(err, body.ErrBusy) {
		t.Fatalf("second request while the first is held: %v, want ErrBusy", err)
	}
	first.Release()
	for range 3 {
		b, err := d.Decode(bytes.NewReader(req), Protobuf, "")
		if err != nil {
			t.Fatalf("after the release: %v", err)
		}
		b.Release()
	}
	if n := budget.Used(); n != 0 {
		t.Fatalf("%d bytes still charged after the releases", n)
	}
}
