package otlp

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

// decodeString decodes body with d and returns the batch's NDJSON, its
// counts, or the error.
func decodeString(t testing.TB, d *Decoder, body []byte, enc Encoding, ce string) (string, *Batch, error) {
	t.Helper()
	b, err := d.Decode(bytes.NewReader(body), enc, ce)
	if err != nil {
		return "", nil, err
	}
	out := string(b.Body)
	cp := *b
	cp.Body = nil
	b.Release()
	return out, &cp, nil
}

func mustProto(t testing.TB, req *collogspb.ExportLogsServiceRequest) []byte {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// otlpJSON is req in the OTLP JSON encoding: protobuf's JSON mapping with
// enums as numbers and trace and span ids in hex (protojson writes them in
// base64, which OTLP JSON does not).
func otlpJSON(t testing.TB, req *collogspb.ExportLogsServiceRequest) []byte {
	t.Helper()
	b, err := protojson.MarshalOptions{UseEnumNumbers: true}.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return hexIDs(t, b)
}

// hexIDs rewrites every "traceId" and "spanId" of a protojson document
// from base64 to hex.
func hexIDs(t testing.TB, b []byte) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	var fix func(any)
	fix = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "traceId" || k == "spanId") {
					raw, err := base64.StdEncoding.DecodeString(s)
					if err != nil {
						t.Fatal(err)
					}
					v[k] = hex.EncodeToString(raw)
					continue
				}
				fix(x)
			}
		case []any:
			for _, x := range v {
				fix(x)
			}
		}
	}
	fix(v)
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

// lines splits NDJSON into its lines, checking each is a JSON object.
func lines(t testing.TB, ndjson string) []string {
	t.Helper()
	if ndjson == "" {
		return nil
	}
	if !strings.HasSuffix(ndjson, "\n") {
		t.Fatalf("NDJSON without its last newline: %q", ndjson)
	}
	ls := strings.Split(strings.TrimSuffix(ndjson, "\n"), "\n")
	for _, l := range ls {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("event %q is not a JSON object: %v", l, err)
		}
	}
	return ls
}

// newDecoder is a Decoder with a Budget of its own.
func newDecoder(lim body.Limits) *Decoder { return NewDecoder(body.NewBudget(lim)) }
