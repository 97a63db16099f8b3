package otlp

import (
	"bytes"
	"testing"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"

	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

// BenchmarkDecode maps a request of 500 typical records (a string body,
// five attributes, ids), in each encoding.
func BenchmarkDecode(b *testing.B) {
	const n = 500
	req := records(n, func(i int) *logspb.LogRecord {
		return &logspb.LogRecord{
			TimeUnixNano: 1700000000000000000 + uint64(i), SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_INFO,
			SeverityText: "INFO", Body: str("GET /api/v1/orders/12345 200 in 12ms"),
			Attributes: []*commonpb.KeyValue{kv("http.method", str("GET")), kv("http.route", str("/api/v1/orders/{id}")),
				kv("http.status_code", &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 200}}),
				kv("user.id", str("u-8f3a9c1e")), kv("duration_ms", &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 12.5}})},
			TraceId: traceID, SpanId: spanID, Flags: 1,
		}
	})
	d := newDecoder(body.Limits{})
	for _, enc := range []Encoding{Protobuf, JSON} {
		body := mustProto(b, req)
		if enc == JSON {
			body = otlpJSON(b, req)
		}
		b.Run(enc.ContentType(), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				batch, err := d.Decode(bytes.NewReader(body), enc, "")
				if err != nil || batch.Events != n {
					b.Fatal(err)
				}
				batch.Release()
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
