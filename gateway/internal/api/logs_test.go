package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/trace"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ingest/sluice/gateway/internal/auth"
	"github.com/sluice-ingest/sluice/gateway/internal/body"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// logsURL is the gateway's /v1/logs.
func (g *gateway) logsURL() string { return strings.TrimSuffix(g.url, "/v1/events") + "/v1/logs" }

// exportLogs emits n records through the OpenTelemetry SDK and its
// OTLP/HTTP exporter (protobuf, gzip) to the gateway, and flushes them.
// Export errors the SDK reports are returned.
func exportLogs(t *testing.T, g *gateway, n int) error {
	t.Helper()
	// Short backoff: the delays come from the answers' Retry-After.
	retry := otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: true, InitialInterval: 10 * time.Millisecond,
		MaxInterval: 100 * time.Millisecond, MaxElapsedTime: 20 * time.Second})
	return devtest.ExportLogs(t, g.logsURL(), "key-a", 100, func(ctx context.Context, lp *sdklog.LoggerProvider) {
		logger := lp.Logger("app/log", otellog.WithInstrumentationVersion("1.2.3"))
		span := trace.NewSpanContext(trace.SpanContextConfig{
			TraceID:    trace.TraceID{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c},
			SpanID:     trace.SpanID{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74},
			TraceFlags: trace.FlagsSampled,
		})
		ctx = trace.ContextWithSpanContext(ctx, span)
		t0 := time.Unix(1700000000, 0)
		for i := range n {
			var r otellog.Record
			r.SetTimestamp(t0.Add(time.Duration(i)))
			r.SetObservedTimestamp(t0.Add(time.Second))
			r.SetSeverity(otellog.SeverityWarn)
			r.SetSeverityText("WARN")
			r.SetBody(attribute.MapValue( // keys sorted: attempt, msg
				attribute.String("msg", "payment declined"), attribute.Int("attempt", i)))
			r.AddAttributes(attribute.Int("i", i), attribute.Bool("retry", true))
			r.SetEventName("checkout.failed")
			logger.Emit(ctx, r)
		}
	}, retry)
}

// logEvent is what the tests read back of a mapped record.
type logEvent struct {
	TimeUnixNano         string `json:"timeUnixNano"`
	ObservedTimeUnixNano string `json:"observedTimeUnixNano"`
	SeverityNumber       int    `json:"severityNumber"`
	SeverityText         string `json:"severityText"`
	Body                 struct {
		KvlistValue struct {
			Values []kvJSON `json:"values"`
		} `json:"kvlistValue"`
	} `json:"body"`
	Attributes []kvJSON `json:"attributes"`
	Flags      int      `json:"flags"`
	TraceID    string   `json:"traceId"`
	SpanID     string   `json:"spanId"`
	EventName  string   `json:"eventName"`
	Resource   struct {
		Attributes []kvJSON `json:"attributes"`
		SchemaURL  string   `json:"schemaUrl"`
	} `json:"resource"`
	Scope struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"scope"`
}

type kvJSON struct {
	Key   string         `json:"key"`
	Value map[string]any `json:"value"`
}

// logEvents reads every event published, checking each message's
// headers.
func (g *gateway) logEvents(tenant string) []logEvent {
	g.t.Helper()
	var out []logEvent
	for _, m := range g.messages() {
		meta, err := envelope.MetaFromHeaders(m.Header)
		if err != nil {
			g.t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(m.Data), "\n"), "\n")
		if got, _ := stream.TenantOf(m.Subject); got != tenant || meta.Tenant != tenant || meta.EventCount != len(lines) {
			g.t.Fatalf("message %s, %+v, %d lines", m.Subject, meta, len(lines))
		}
		for _, l := range lines {
			var e logEvent
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				g.t.Fatalf("event %q: %v", l, err)
			}
			out = append(out, e)
		}
	}
	return out
}

// The OpenTelemetry SDK's OTLP/HTTP exporter (protobuf, gzip) sends 250
// records in three requests: each record is published once, with the
// mapping's fields, in one message per request.
func TestOTLPExporterRecordsLandOnce(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	const n = 250
	if err := exportLogs(t, g, n); err != nil {
		t.Fatalf("export: %v", err)
	}
	if msgs := g.streamInfo().State.Msgs; msgs != 3 {
		t.Errorf("%d messages, want one per request of at most 100 records: 3", msgs)
	}
	events := g.logEvents("acme")
	seen := make([]int, n)
	for _, e := range events {
		var i int
		if len(e.Attributes) != 2 || e.Attributes[0].Key != "i" {
			t.Fatalf("attributes %+v", e.Attributes)
		}
		if _, err := fmt.Sscan(e.Attributes[0].Value["intValue"].(string), &i); err != nil || i < 0 || i >= n {
			t.Fatalf("attribute i: %+v", e.Attributes[0])
		}
		seen[i]++
		want := fmt.Sprint(time.Unix(1700000000, 0).Add(time.Duration(i)).UnixNano())
		body := e.Body.KvlistValue.Values
		if e.TimeUnixNano != want || e.ObservedTimeUnixNano != "1700000001000000000" || e.SeverityNumber != 13 || e.SeverityText != "WARN" ||
			len(body) != 2 || body[1].Key != "msg" || body[1].Value["stringValue"] != "payment declined" || body[0].Value["intValue"] != fmt.Sprint(i) ||
			e.Attributes[1].Value["boolValue"] != true || e.Flags != 1 ||
			e.TraceID != "5b8efff798038103d269b633813fc60c" || e.SpanID != "eee19b7ec3c1b174" || e.EventName != "checkout.failed" ||
			e.Scope.Name != "app/log" || e.Scope.Version != "1.2.3" || e.Resource.SchemaURL != "https://opentelemetry.io/schemas/1.26.0" {
			t.Fatalf("event %d: %+v", i, e)
		}
		if !hasAttr(e.Resource.Attributes, "service.name", "checkout") {
			t.Fatalf("resource %+v", e.Resource)
		}
	}
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("record %d published %d times (%d events)", i, c, len(events))
		}
	}
}

func hasAttr(kvs []kvJSON, key, value string) bool {
	for _, kv := range kvs {
		if kv.Key == key && kv.Value["stringValue"] == value {
			return true
		}
	}
	return false
}

// scripted answers Decide with its script in order, then allows.
type scripted struct {
	mu     sync.Mutex
	script []func() (Decision, error)
	calls  int
}

func (s *scripted) Decide(context.Context, auth.Key, int) (Decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(s.script) == 0 {
		return Decision{Allowed: true}, nil
	}
	next := s.script[0]
	s.script = s.script[1:]
	return next()
}

func refuse() (Decision, error) { return Decision{RetryAfter: time.Second}, nil }
func fail() (Decision, error)   { return Decision{}, errors.New("redis timed out") }

// The exporter honours a 429 and a 503 with Retry-After: it retries, and
// its records land once.
func TestOTLPExporterRetries(t *testing.T) {
	adm := &scripted{script: []func() (Decision, error){refuse, fail}}
	g := startGateway(t, gatewayOptions{cfg: Config{RateLimit: adm}})
	if err := exportLogs(t, g, 5); err != nil {
		t.Fatalf("export: %v", err)
	}
	if adm.calls != 3 {
		t.Errorf("the limiter was asked %d times, want 3 (429, 503, accepted)", adm.calls)
	}
	if msgs, events := g.streamInfo().State.Msgs, len(g.logEvents("acme")); msgs != 1 || events != 5 {
		t.Errorf("%d messages holding %d events, want 1 and 5", msgs, events)
	}
}

// otlpAnswer is an answer of /v1/logs, its body decoded by its
// Content-Type.
type otlpAnswer struct {
	status int
	header http.Header
	resp   *collogspb.ExportLogsServiceResponse
	st     *status.Status
	reason string // the ErrorInfo's
}

func (g *gateway) postLogs(key, ct, ce string, body []byte) otlpAnswer {
	g.t.Helper()
	r, err := http.NewRequestWithContext(g.t.Context(), http.MethodPost, g.logsURL(), bytes.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	r.Header.Set("Content-Type", ct)
	if ce != "" {
		r.Header.Set("Content-Encoding", ce)
	}
	resp, err := g.client.Do(r)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		g.t.Fatal(err)
	}
	a := otlpAnswer{status: resp.StatusCode, header: resp.Header,
		resp: &collogspb.ExportLogsServiceResponse{}, st: &status.Status{}}
	unmarshal := proto.Unmarshal
	if got := resp.Header.Get("Content-Type"); got == "application/json" {
		unmarshal = func(b []byte, m proto.Message) error { return protojson.Unmarshal(b, m) }
	} else if got != "application/x-protobuf" {
		g.t.Fatalf("Content-Type %q", got)
	}
	var m proto.Message = a.resp
	if a.status != http.StatusOK {
		m = a.st
	}
	if err := unmarshal(b, m); err != nil {
		g.t.Fatalf("answer %d %q: %v", a.status, b, err)
	}
	if a.status != http.StatusOK {
		var info errdetails.ErrorInfo
		if len(a.st.Details) != 1 || a.st.Details[0].UnmarshalTo(&info) != nil {
			g.t.Fatalf("status without ErrorInfo: %v", a.st)
		}
		a.reason = info.Reason
	}
	return a
}

// A hand-written body in the OTLP JSON encoding is answered in JSON; a
// record that cannot be mapped is refused as a partial success.
func TestOTLPJSON(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	body := `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"web"}}]},
	  "scopeLogs":[{"scope":{"name":"handwritten"},"logRecords":[
	    {"timeUnixNano":"1700000000000000000","severityNumber":9,"severityText":"INFO","body":{"stringValue":"hello"},
	     "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","attributes":[{"key":"n","value":{"intValue":"42"}}]},
	    {"body":{"stringValue":"bad ids"},"traceId":"0102"}]}]}]}`
	a := g.postLogs("key-b", "application/json", "", []byte(body))
	if a.status != http.StatusOK || a.resp.GetPartialSuccess().GetRejectedLogRecords() != 1 ||
		a.resp.GetPartialSuccess().GetErrorMessage() != "traceId must be 16 bytes, got 2" || a.header.Get("Sluice-Batch-Id") == "" {
		t.Fatalf("%+v %v", a, a.resp)
	}
	msgs := g.messages()
	want := `{"timeUnixNano":"1700000000000000000","severityNumber":9,"severityText":"INFO","body":{"stringValue":"hello"},` +
		`"attributes":[{"key":"n","value":{"intValue":"42"}}],"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",` +
		`"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"web"}}]},"scope":{"name":"handwritten"}}` + "\n"
	if len(msgs) != 1 || string(msgs[0].Data) != want {
		t.Fatalf("messages %v", msgs)
	}
	if tenant, _ := stream.TenantOf(msgs[0].Subject); tenant != "beta" {
		t.Fatalf("messages %v", msgs)
	}
	meta, err := envelope.MetaFromHeaders(msgs[0].Header)
	if err != nil || meta.BatchID != a.header.Get("Sluice-Batch-Id") || meta.EventCount != 1 {
		t.Errorf("%+v %v", meta, err)
	}
	// An empty request is a success that publishes nothing.
	if a := g.postLogs("key-b", "application/json", "", []byte(`{}`)); a.status != http.StatusOK || a.resp.PartialSuccess != nil {
		t.Errorf("empty request: %+v", a)
	}
	if n := g.streamInfo().State.Msgs; n != 1 {
		t.Errorf("%d messages", n)
	}
}

// Refusals are a google.rpc.Status in the request's encoding, with the
// reason; 429 and 503 carry Retry-After; nothing is published.
func TestOTLPRefusals(t *testing.T) {
	adm := &scripted{script: []func() (Decision, error){refuse, fail}}
	g := startGateway(t, gatewayOptions{cfg: Config{RateLimit: adm, Limits: body.Limits{MaxEvents: 3}}})
	one := []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{}]}]}]}`)
	oneProto := []byte{0x0a, 0x04, 0x12, 0x02, 0x12, 0x00} // the same in protobuf
	for _, tt := range []struct {
		name, key, ct, ce string
		body              []byte
		status            int
		reason, msg       string
		grpc              int32
	}{
		{"rate limited", "key-a", "application/x-protobuf", "", oneProto, 429, "rate_limited", "rate limit", 8},
		{"limiter down", "key-a", "application/json", "", one, 503, "limiter_unavailable", "retry later", 14},
		{"bad protobuf", "key-a", "application/x-protobuf", "", []byte{0x0a, 0x05, 1}, 400, "malformed_body", "unexpected EOF", 3},
		{"bad JSON", "key-a", "application/json", "", []byte(`{"resourceLogs":[{"scopeLogs":{}}]}`), 400, "malformed_body", `"scopeLogs" at byte 30: expected an array`, 3},
		{"bad gzip", "key-a", "application/json", "gzip", one, 400, "malformed_body", "gzip", 3},
		{"too many", "key-a", "application/json", "", []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{},{},{},{}]}]}]}`), 413, "too_many_events", "more than 3", 8},
		{"other type", "key-a", "text/plain", "", one, 415, "unsupported_media_type", "application/x-protobuf", 12},
		{"no key", "", "application/x-protobuf", "", nil, 401, "unauthorized", "", 16},
	} {
		a := g.postLogs(tt.key, tt.ct, tt.ce, tt.body)
		if a.status != tt.status || a.reason != tt.reason || !strings.Contains(a.st.Message, tt.msg) || a.st.Code != tt.grpc {
			t.Errorf("%s: %d %s %d %q", tt.name, a.status, a.reason, a.st.Code, a.st.Message)
		}
		if (tt.status == 429 || tt.status == 503) && a.header.Get("Retry-After") != "1" {
			t.Errorf("%s: Retry-After %q", tt.name, a.header.Get("Retry-After"))
		}
	}
	if n := g.streamInfo().State.Msgs; n != 0 {
		t.Errorf("%d messages published", n)
	}
}

// Refusing a 300 MiB gzip bomb, and decoding a body just under the
// decoded limit made of the smallest values (1.3 million empty KeyValues,
// which a decoder building structs would turn into over 100 MiB), raise
// heap in use by less than heapBound, as on /v1/events.
func TestOTLPHeapStaysBounded(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	gzBomb := bomb(gzipped, "\x0a", 300)
	const n = 1_300_000
	var tiny strings.Builder
	tiny.WriteString(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"kvlistValue":{"values":[`)
	tiny.WriteString(strings.Repeat(`{},`, n))
	tiny.WriteString(`{}]}}}]}]}]}`)
	tinyGz := []byte(gzipped(tiny.String()))
	for _, tt := range []struct {
		name, ct string
		body     []byte
		status   int
	}{
		{"gzip bomb", "application/x-protobuf", []byte(gzBomb), http.StatusRequestEntityTooLarge},
		// Each {} maps to {"key":""}: the event passes the limit once the
		// whole body is read and translated, and a third of it mapped.
		{"empty values", "application/json", tinyGz, http.StatusRequestEntityTooLarge},
	} {
		var a otlpAnswer
		growth := peakHeapGrowth(func() { a = g.postLogs("key-a", tt.ct, "gzip", tt.body) })
		if a.status != tt.status {
			t.Errorf("%s: %d %s %q", tt.name, a.status, a.reason, a.st.GetMessage())
		}
		t.Logf("%s: heap in use grew by at most %.1f MiB (%s)", tt.name, float64(growth)/(1<<20), a.st.GetMessage())
		if growth > heapBound {
			t.Errorf("%s: heap in use grew by %d bytes, over the bound of %d", tt.name, growth, heapBound)
		}
	}
}

// With the cost per request, the limiter refuses before the body is read:
// a body that would not decode gets the 429.
func TestOTLPRateLimitBeforeBody(t *testing.T) {
	adm := &scripted{script: []func() (Decision, error){refuse}}
	g := startGateway(t, gatewayOptions{cfg: Config{RateLimit: adm, RateLimitBeforeBody: true}})
	a := g.postLogs("key-a", "application/x-protobuf", "", []byte{0xff})
	if a.status != http.StatusTooManyRequests || a.reason != "rate_limited" || a.header.Get("Retry-After") != "1" {
		t.Errorf("%d %s %v", a.status, a.reason, a.header)
	}
	if a := g.postLogs("key-a", "application/x-protobuf", "", []byte{0xff}); a.status != http.StatusBadRequest || adm.calls != 2 {
		t.Errorf("%d %s, %d calls", a.status, a.reason, adm.calls)
	}
}

// /v1/logs shares the budget of bytes in flight with /v1/events: a request
// whose buffers would pass it is a 503 with Retry-After.
func TestOTLPBudget(t *testing.T) {
	g := startGateway(t, gatewayOptions{cfg: Config{Limits: body.Limits{MaxDecodedBytes: 1 << 20, MaxInflightBytes: 512 << 10}}})
	body := []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"` + strings.Repeat("x", 600<<10) + `"}}]}]}]}`)
	a := g.postLogs("key-a", "application/json", "gzip", []byte(gzipped(string(body))))
	if a.status != http.StatusServiceUnavailable || a.reason != "overloaded" || a.header.Get("Retry-After") != "1" || a.st.Code != 14 {
		t.Errorf("%d %s %v %v", a.status, a.reason, a.header, a.st)
	}
	if a := g.postLogs("key-a", "application/json", "", []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{}]}]}]}`)); a.status != http.StatusOK {
		t.Errorf("a small request after: %d %s", a.status, a.reason)
	}
}
