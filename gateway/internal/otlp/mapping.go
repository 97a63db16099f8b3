package otlp

import (
	"math"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sluice-ingest/sluice/client/apierror"
	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

// Field numbers of the OTLP messages read (opentelemetry/proto/.../v1).
const (
	requestResourceLogs = 1 // ExportLogsServiceRequest.resource_logs

	resourceLogsResource  = 1
	resourceLogsScopeLogs = 2
	resourceLogsSchemaURL = 3

	resourceAttributes = 1
	resourceDropped    = 2

	scopeLogsScope      = 1
	scopeLogsLogRecords = 2
	scopeLogsSchemaURL  = 3

	scopeName       = 1
	scopeVersion    = 2
	scopeAttributes = 3
	scopeDropped    = 4

	recordTime         = 1
	recordSeverityNum  = 2
	recordSeverityText = 3
	recordBody         = 5
	recordAttributes   = 6
	recordDropped      = 7
	recordFlags        = 8
	recordTraceID      = 9
	recordSpanID       = 10
	recordObservedTime = 11
	recordEventName    = 12

	anyString = 1
	anyBool   = 2
	anyInt    = 3
	anyDouble = 4
	anyArray  = 5
	anyKVList = 6
	anyBytes  = 7

	listValues = 1 // ArrayValue.values and KeyValueList.values
	kvKey      = 1
	kvValue    = 2
)

// mapper turns a protobuf ExportLogsServiceRequest into NDJSON events, one
// line per LogRecord (see mapRequest for the mapping). It reads the body
// in place, several passes over a message where the mapping needs its
// fields in another order than the wire's, and writes each event straight
// to the output: memory is the body plus the output, whatever the body
// holds.
type mapper struct {
	lim body.Limits
	out jsonOut
	// events counts the records met (accepted or refused) against
	// MaxEvents; accepted those written.
	events, accepted int
	rejected         int
	reason           string // why the first refused record was refused
	// res and scope hold the current resource's and scope's members of
	// every event, rendered once (see member).
	res, scope jsonOut
}

func (m *mapper) reset(lim body.Limits, acct *account) {
	limit := int(min(lim.MaxDecodedBytes, math.MaxInt32))
	*m = mapper{lim: lim,
		out:   jsonOut{b: m.out.b[:0], limit: limit, acct: acct},
		res:   jsonOut{b: m.res.b[:0], limit: limit, acct: acct},
		scope: jsonOut{b: m.scope.b[:0], limit: limit, acct: acct}}
}

// mapRequest maps every record of the request: each event is the record in
// OTLP JSON, its fields in a fixed order, then "resource" and "scope", each
// left out when empty (docs/api.md, OTLP mapping). A field sent twice counts
// once, the last one, as protobuf does for scalars (protobuf would merge two
// copies of a message field; no encoder sends them).
func (m *mapper) mapRequest(b []byte) error {
	f := walk(b)
	for f.next() {
		if f.is(requestResourceLogs, protowire.BytesType) {
			if err := m.resourceLogs(f.val); err != nil {
				return err
			}
		}
	}
	if f.err != nil {
		return f.err
	}
	return nil
}

// head reads what ResourceLogs and ScopeLogs both hold beside their list:
// field 1 (the Resource, the InstrumentationScope) and 3 (schema_url).
func head(b []byte) (head, schema []byte, err error) {
	f := walk(b)
	for f.next() {
		switch {
		case f.is(resourceLogsResource, protowire.BytesType): // scopeLogsScope
			head = f.val
		case f.is(resourceLogsSchemaURL, protowire.BytesType): // scopeLogsSchemaURL
			schema = f.val
		}
	}
	return head, schema, f.err
}

func (m *mapper) resourceLogs(b []byte) error {
	resource, schema, err := head(b)
	if err != nil {
		return err
	}
	refused, err := m.member(&m.res, "resource", func(o *jsonOut) (bool, error) {
		return m.resource(o, resource, schema)
	})
	if err != nil {
		return err
	}
	f := walk(b)
	for f.next() {
		if f.is(resourceLogsScopeLogs, protowire.BytesType) {
			if err := m.scopeLogs(f.val, refused); err != nil {
				return err
			}
		}
	}
	return nil
}

// member renders the "name":{...} member that every event of a resource
// or a scope carries into o, or nothing when the object would be empty. A
// refusal (invalid UTF-8) is returned as a recordError, for the caller to
// refuse every record under it.
func (m *mapper) member(o *jsonOut, name string, body func(*jsonOut) (bool, error)) (*recordError, error) {
	o.b = o.b[:0]
	o.key(false, name)
	o.raw("{")
	any, err := body(o)
	re, refused := err.(*recordError) // never wrapped; errors.As would allocate
	switch {
	case refused:
		o.b = o.b[:0]
		return re, nil
	case err != nil:
		return nil, err
	case !any:
		o.b = o.b[:0]
		return nil, nil
	}
	o.raw("}")
	return nil, o.check()
}

// resource writes the members of "resource"; it reports whether there
// were any.
func (m *mapper) resource(o *jsonOut, b, schema []byte) (bool, error) {
	var dropped uint64
	attrs := false
	f := walk(b)
	for f.next() {
		switch {
		case f.is(resourceAttributes, protowire.BytesType):
			attrs = true
		case f.is(resourceDropped, protowire.VarintType):
			dropped = uint64(uint32(f.x))
		}
	}
	if f.err != nil {
		return false, f.err
	}
	w := members{o: o}
	if err := m.attributesMembers(&w, b, resourceAttributes, 3, attrs, dropped); err != nil {
		return false, err
	}
	return w.n > 0, m.textMember(&w, "schemaUrl", schema)
}

func (m *mapper) scopeLogs(b []byte, refused *recordError) error {
	scope, schema, err := head(b)
	if err != nil {
		return err
	}
	if refused == nil {
		refused, err = m.member(&m.scope, "scope", func(o *jsonOut) (bool, error) {
			return m.instrumentationScope(o, scope, schema)
		})
		if err != nil {
			return err
		}
	}
	f := walk(b)
	for f.next() {
		if !f.is(scopeLogsLogRecords, protowire.BytesType) {
			continue
		}
		m.events++
		if m.events > m.lim.MaxEvents {
			return body.Errorf(apierror.TooManyEvents,
				"the request holds more than %d log records", m.lim.MaxEvents)
		}
		if refused != nil {
			m.refuse(refused)
			continue
		}
		if err := m.record(f.val); err != nil {
			return err
		}
	}
	return f.err
}

func (m *mapper) instrumentationScope(o *jsonOut, b, schema []byte) (bool, error) {
	var name, version []byte
	var dropped uint64
	attrs := false
	f := walk(b)
	for f.next() {
		switch {
		case f.is(scopeName, protowire.BytesType):
			name = f.val
		case f.is(scopeVersion, protowire.BytesType):
			version = f.val
		case f.is(scopeAttributes, protowire.BytesType):
			attrs = true
		case f.is(scopeDropped, protowire.VarintType):
			dropped = uint64(uint32(f.x))
		}
	}
	if f.err != nil {
		return false, f.err
	}
	w := members{o: o}
	if err := m.textMember(&w, "name", name); err != nil {
		return false, err
	}
	if err := m.textMember(&w, "version", version); err != nil {
		return false, err
	}
	if err := m.attributesMembers(&w, b, scopeAttributes, 3, attrs, dropped); err != nil {
		return false, err
	}
	return w.n > 0, m.textMember(&w, "schemaUrl", schema)
}

// refuse counts a refused record, keeping the first reason.
func (m *mapper) refuse(re *recordError) {
	m.rejected++
	if m.reason == "" {
		m.reason = re.reason
	}
}

// logRecord holds the singular fields of a LogRecord, last one wins.
type logRecord struct {
	time, observed         uint64
	severity               int32
	severityText, body     []byte
	hasBody, attrs         bool
	dropped, flags         uint32
	traceID, spanID, event []byte
}

// record writes one event, or refuses the record: its output is taken
// back and it counts in the partial success.
func (m *mapper) record(b []byte) error {
	start := len(m.out.b)
	err := m.writeRecord(b)
	if re, ok := err.(*recordError); ok { // never wrapped; errors.As would allocate
		m.out.b = m.out.b[:start]
		m.refuse(re)
		return nil
	}
	if err != nil {
		return err
	}
	m.accepted++
	return nil
}

func (m *mapper) writeRecord(b []byte) error {
	var r logRecord
	f := walk(b)
	for f.next() {
		switch {
		case f.is(recordTime, protowire.Fixed64Type):
			r.time = f.x
		case f.is(recordObservedTime, protowire.Fixed64Type):
			r.observed = f.x
		case f.is(recordSeverityNum, protowire.VarintType):
			r.severity = int32(f.x)
		case f.is(recordSeverityText, protowire.BytesType):
			r.severityText = f.val
		case f.is(recordBody, protowire.BytesType):
			r.body, r.hasBody = f.val, true
		case f.is(recordAttributes, protowire.BytesType):
			r.attrs = true
		case f.is(recordDropped, protowire.VarintType):
			r.dropped = uint32(f.x)
		case f.is(recordFlags, protowire.Fixed32Type):
			r.flags = uint32(f.x)
		case f.is(recordTraceID, protowire.BytesType):
			r.traceID = f.val
		case f.is(recordSpanID, protowire.BytesType):
			r.spanID = f.val
		case f.is(recordEventName, protowire.BytesType):
			r.event = f.val
		}
	}
	if f.err != nil {
		return f.err
	}
	// The spec's ids are 16 and 8 bytes; empty means none.
	if len(r.traceID) != 0 && len(r.traceID) != 16 {
		return &recordError{"traceId must be 16 bytes, got " + strconv.Itoa(len(r.traceID))}
	}
	if len(r.spanID) != 0 && len(r.spanID) != 8 {
		return &recordError{"spanId must be 8 bytes, got " + strconv.Itoa(len(r.spanID))}
	}
	o := &m.out
	o.raw("{")
	w := members{o: o}
	if r.time != 0 {
		w.key("timeUnixNano")
		o.uintStr(r.time)
	}
	if r.observed != 0 {
		w.key("observedTimeUnixNano")
		o.uintStr(r.observed)
	}
	if r.severity != 0 {
		w.key("severityNumber")
		o.int(int64(r.severity))
	}
	if err := m.textMember(&w, "severityText", r.severityText); err != nil {
		return err
	}
	if r.hasBody {
		w.key("body")
		if err := m.anyValue(o, r.body, 2); err != nil {
			return err
		}
	}
	if err := m.attributesMembers(&w, b, recordAttributes, 2, r.attrs, uint64(r.dropped)); err != nil {
		return err
	}
	w.uint("flags", uint64(r.flags))
	if len(r.traceID) > 0 {
		w.key("traceId")
		o.hex(r.traceID)
	}
	if len(r.spanID) > 0 {
		w.key("spanId")
		o.hex(r.spanID)
	}
	if err := m.textMember(&w, "eventName", r.event); err != nil {
		return err
	}
	w.part(m.res.b)
	w.part(m.scope.b)
	o.raw("}\n")
	return o.check()
}
