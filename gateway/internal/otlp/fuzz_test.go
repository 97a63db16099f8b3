package otlp

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

// fuzzLimits are small, so that the fuzzer reaches every limit.
var fuzzLimits = body.Limits{MaxBodyBytes: 64 << 10, MaxDecodedBytes: 32 << 10, MaxEvents: 50, MaxDepth: 12}

// checkBatch holds what every decoding must: an *body.Error or events that
// are JSON objects, as many as counted, within the size limit.
func checkBatch(t *testing.T, out string, b *Batch, err error) {
	t.Helper()
	if err != nil {
		var e *body.Error
		if !errors.As(err, &e) || e.Status() < 400 || e.Status() > 499 || e.Code == "" || e.Message == "" {
			t.Fatalf("error %#v is not a refusal", err)
		}
		return
	}
	if len(out) > int(fuzzLimits.MaxDecodedBytes) {
		t.Fatalf("%d bytes of events, over the limit", len(out))
	}
	if n := len(lines(t, out)); n != b.Events || b.Events+b.Rejected > fuzzLimits.MaxEvents {
		t.Fatalf("%d lines, batch %+v", n, b)
	}
	if (b.Rejected > 0) != (b.Reason != "") {
		t.Fatalf("batch %+v", b)
	}
}

func fuzzSeeds() [][]byte {
	full := fullRequest()
	b, _ := proto.Marshal(full)
	one, _ := proto.Marshal(records(1, func(int) *logspb.LogRecord { return &logspb.LogRecord{Body: nested(5)} }))
	return [][]byte{
		b, b[:len(b)/2], one, nil, {0x00}, {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f},
		protowire.AppendTag(nil, 1, protowire.StartGroupType),
		bytes.ReplaceAll(b, []byte("WARN"), []byte("\xff\xfe\xfd\xfc")),
	}
}

// FuzzOTLPProtobuf decodes arbitrary protobuf bodies. Beyond the
// invariants of checkBatch: what the decoder accepts, protobuf's own
// decoder accepts with as many records; and a request in its canonical
// protobuf form and in OTLP JSON maps to the same events.
func FuzzOTLPProtobuf(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	d := newDecoder(fuzzLimits)
	f.Fuzz(func(t *testing.T, body []byte) {
		out, b, err := decodeString(t, d, body, Protobuf, "")
		checkBatch(t, out, b, err)
		var req collogspb.ExportLogsServiceRequest
		if perr := proto.Unmarshal(body, &req); perr != nil {
			return // invalid UTF-8 and groups are refused by proto, not by us
		}
		n := 0
		for _, rl := range req.ResourceLogs {
			for _, sl := range rl.ScopeLogs {
				n += len(sl.LogRecords)
			}
		}
		if err == nil && n != b.Events+b.Rejected {
			t.Fatalf("protobuf finds %d records, the decoder %d+%d", n, b.Events, b.Rejected)
		}
		canonical, merr := proto.Marshal(&req)
		if merr != nil {
			return
		}
		pout, pb, perr := decodeString(t, d, canonical, Protobuf, "")
		jout, jb, jerr := decodeString(t, d, otlpJSON(t, &req), JSON, "")
		if perr != nil || jerr != nil {
			// The JSON is larger and deeper; only its limits may differ.
			if perr == nil && !isLimit(jerr) {
				t.Fatalf("protobuf decodes, its JSON fails: %v", jerr)
			}
			return
		}
		if pout != jout || pb.Events != jb.Events || pb.Rejected != jb.Rejected {
			t.Fatalf("protobuf and JSON differ:\n%s\n%s", pout, jout)
		}
	})
}

func isLimit(err error) bool {
	var e *body.Error
	return errors.As(err, &e) && e.Status() == 413
}

// FuzzOTLPJSON decodes arbitrary JSON bodies: beyond checkBatch, a body
// that decodes is valid JSON.
func FuzzOTLPJSON(f *testing.F) {
	f.Add(otlpJSON(f, fullRequest()))
	for _, s := range []string{
		`{}`, `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"kvlistValue":{"values":[{"key":"a","value":{"arrayValue":{"values":[{"intValue":"1"}]}}}]}}}]}]}]}`,
		`{"resource_logs":[{"scope_logs":[{"log_records":[{"traceId":"0102","severityNumber":"SEVERITY_NUMBER_INFO","timeUnixNano":17}]}]}]}`,
		`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"\ud800\u00e9\n"},"x":[{"y":[null,true,-0.5e-3]}]}]}]}]}`,
		`{"resourceLogs":[}`, `[]`, `{"a":"\xff"}`, `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"doubleValue":"NaN"}}]}]}]} x`,
		strings.Repeat(`{"a":`, 40) + strings.Repeat(`}`, 40),
	} {
		f.Add([]byte(s))
	}
	d := newDecoder(fuzzLimits)
	f.Fuzz(func(t *testing.T, body []byte) {
		out, b, err := decodeString(t, d, body, JSON, "")
		checkBatch(t, out, b, err)
		if err == nil && !json.Valid(body) {
			t.Fatalf("invalid JSON accepted: %q", body)
		}
	})
}
