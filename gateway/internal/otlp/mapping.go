package otlp

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
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
	lim Limits
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

func (m *mapper) reset(lim Limits) {
	limit := int(min(lim.MaxDecodedBytes, math.MaxInt32))
	*m = mapper{lim: lim,
		out:   jsonOut{b: m.out.b[:0], limit: limit},
		res:   jsonOut{b: m.res.b[:0], limit: limit},
		scope: jsonOut{b: m.scope.b[:0], limit: limit}}
}

// mapRequest maps every record of the request. Each event is the record
// in OTLP JSON (lowerCamelCase names, 64-bit integers as strings, ids as
// hex, enums as numbers, fields at their default left out), in the order
//
//	timeUnixNano observedTimeUnixNano severityNumber severityText body
//	attributes droppedAttributesCount flags traceId spanId eventName
//
// followed by "resource" (the Resource's attributes and
// droppedAttributesCount, and the ResourceLogs' schemaUrl) and "scope"
// (the InstrumentationScope's name, version, attributes and
// droppedAttributesCount, and the ScopeLogs' schemaUrl), each left out
// when empty. A field sent twice counts once, the last one, as protobuf
// does for scalars (protobuf would merge two copies of a message field;
// no encoder sends them).
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

func (m *mapper) resourceLogs(b []byte) error {
	var resource, schema []byte
	f := walk(b)
	for f.next() {
		switch {
		case f.is(resourceLogsResource, protowire.BytesType):
			resource = f.val
		case f.is(resourceLogsSchemaURL, protowire.BytesType):
			schema = f.val
		}
	}
	if f.err != nil {
		return f.err
	}
	refused, err := m.member(&m.res, "resource", func(o *jsonOut) (bool, error) {
		return m.resource(o, resource, schema)
	})
	if err != nil {
		return err
	}
	f = walk(b)
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
	var re *recordError
	switch {
	case errors.As(err, &re):
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
	first := true
	if attrs {
		o.key(first, "attributes")
		if err := m.attributes(o, b, resourceAttributes, 3); err != nil {
			return false, err
		}
		first = false
	}
	if dropped != 0 {
		o.key(first, "droppedAttributesCount")
		o.uint(dropped)
		first = false
	}
	if len(schema) > 0 {
		o.key(first, "schemaUrl")
		if err := m.text(o, schema, "resource schemaUrl"); err != nil {
			return false, err
		}
		first = false
	}
	return !first, nil
}

func (m *mapper) scopeLogs(b []byte, refused *recordError) error {
	var scope, schema []byte
	f := walk(b)
	for f.next() {
		switch {
		case f.is(scopeLogsScope, protowire.BytesType):
			scope = f.val
		case f.is(scopeLogsSchemaURL, protowire.BytesType):
			schema = f.val
		}
	}
	if f.err != nil {
		return f.err
	}
	if refused == nil {
		var err error
		refused, err = m.member(&m.scope, "scope", func(o *jsonOut) (bool, error) {
			return m.instrumentationScope(o, scope, schema)
		})
		if err != nil {
			return err
		}
	}
	f = walk(b)
	for f.next() {
		if !f.is(scopeLogsLogRecords, protowire.BytesType) {
			continue
		}
		m.events++
		if m.events > m.lim.MaxEvents {
			return errorf(http.StatusRequestEntityTooLarge, "too_many_events",
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
	first := true
	if len(name) > 0 {
		o.key(first, "name")
		if err := m.text(o, name, "scope name"); err != nil {
			return false, err
		}
		first = false
	}
	if len(version) > 0 {
		o.key(first, "version")
		if err := m.text(o, version, "scope version"); err != nil {
			return false, err
		}
		first = false
	}
	if attrs {
		o.key(first, "attributes")
		if err := m.attributes(o, b, scopeAttributes, 3); err != nil {
			return false, err
		}
		first = false
	}
	if dropped != 0 {
		o.key(first, "droppedAttributesCount")
		o.uint(dropped)
		first = false
	}
	if len(schema) > 0 {
		o.key(first, "schemaUrl")
		if err := m.text(o, schema, "scope schemaUrl"); err != nil {
			return false, err
		}
		first = false
	}
	return !first, nil
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
	var re *recordError
	if errors.As(err, &re) {
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
	first := true
	if r.time != 0 {
		o.key(first, "timeUnixNano")
		o.uintStr(r.time)
		first = false
	}
	if r.observed != 0 {
		o.key(first, "observedTimeUnixNano")
		o.uintStr(r.observed)
		first = false
	}
	if r.severity != 0 {
		o.key(first, "severityNumber")
		o.int(int64(r.severity))
		first = false
	}
	if len(r.severityText) > 0 {
		o.key(first, "severityText")
		if err := m.text(o, r.severityText, "severityText"); err != nil {
			return err
		}
		first = false
	}
	if r.hasBody {
		o.key(first, "body")
		if err := m.anyValue(o, r.body, 2); err != nil {
			return err
		}
		first = false
	}
	if r.attrs {
		o.key(first, "attributes")
		if err := m.attributes(o, b, recordAttributes, 2); err != nil {
			return err
		}
		first = false
	}
	if r.dropped != 0 {
		o.key(first, "droppedAttributesCount")
		o.uint(uint64(r.dropped))
		first = false
	}
	if r.flags != 0 {
		o.key(first, "flags")
		o.uint(uint64(r.flags))
		first = false
	}
	if len(r.traceID) > 0 {
		o.key(first, "traceId")
		o.hex(r.traceID)
		first = false
	}
	if len(r.spanID) > 0 {
		o.key(first, "spanId")
		o.hex(r.spanID)
		first = false
	}
	if len(r.event) > 0 {
		o.key(first, "eventName")
		if err := m.text(o, r.event, "eventName"); err != nil {
			return err
		}
		first = false
	}
	for _, part := range [][]byte{m.res.b, m.scope.b} {
		if len(part) == 0 {
			continue
		}
		if first {
			part = part[1:] // its leading comma
		}
		o.b = append(o.b, part...)
		first = false
	}
	o.raw("}\n")
	return o.check()
}

// attributes writes the KeyValues in field num of message b as a JSON
// array; depth is the array's own.
func (m *mapper) attributes(o *jsonOut, b []byte, num protowire.Number, depth int) error {
	if err := m.deep(depth); err != nil {
		return err
	}
	o.raw("[")
	first := true
	f := walk(b)
	for f.next() {
		if !f.is(num, protowire.BytesType) {
			continue
		}
		if !first {
			o.raw(",")
		}
		first = false
		if err := m.keyValue(o, f.val, depth+1); err != nil {
			return err
		}
	}
	if f.err != nil {
		return f.err
	}
	o.raw("]")
	return o.check()
}

// keyValue writes {"key":...,"value":{...}}; depth is the object's.
func (m *mapper) keyValue(o *jsonOut, b []byte, depth int) error {
	if err := m.deep(depth); err != nil {
		return err
	}
	var key, value []byte
	hasValue := false
	f := walk(b)
	for f.next() {
		switch {
		case f.is(kvKey, protowire.BytesType):
			key = f.val
		case f.is(kvValue, protowire.BytesType):
			value, hasValue = f.val, true
		}
	}
	if f.err != nil {
		return f.err
	}
	o.raw(`{"key":`)
	if err := m.text(o, key, "attribute key"); err != nil {
		return err
	}
	if hasValue {
		o.raw(`,"value":`)
		if err := m.anyValue(o, value, depth+1); err != nil {
			return err
		}
	}
	o.raw("}")
	return o.check()
}

// anyValue writes an AnyValue as its OTLP JSON object ({} when unset);
// depth is the object's. Of the oneof's fields the last one sent counts.
func (m *mapper) anyValue(o *jsonOut, b []byte, depth int) error {
	if err := m.deep(depth); err != nil {
		return err
	}
	var (
		kind protowire.Number
		x    uint64
		val  []byte
	)
	f := walk(b)
	for f.next() {
		switch {
		case f.is(anyString, protowire.BytesType), f.is(anyArray, protowire.BytesType),
			f.is(anyKVList, protowire.BytesType), f.is(anyBytes, protowire.BytesType):
			kind, val = f.num, f.val
		case f.is(anyBool, protowire.VarintType), f.is(anyInt, protowire.VarintType),
			f.is(anyDouble, protowire.Fixed64Type):
			kind, x = f.num, f.x
		}
	}
	if f.err != nil {
		return f.err
	}
	switch kind {
	case 0:
		o.raw("{}")
		return nil
	case anyString:
		o.raw(`{"stringValue":`)
		if err := m.text(o, val, "stringValue"); err != nil {
			return err
		}
	case anyBool:
		o.raw(`{"boolValue":`)
		o.bool(protowire.DecodeBool(x))
	case anyInt:
		o.raw(`{"intValue":`)
		o.intStr(int64(x))
	case anyDouble:
		o.raw(`{"doubleValue":`)
		o.double(math.Float64frombits(x))
	case anyBytes:
		o.raw(`{"bytesValue":`)
		if err := o.base64(val); err != nil {
			return err
		}
	case anyArray, anyKVList:
		name, each := `{"arrayValue":`, m.anyValue
		if kind == anyKVList {
			name, each = `{"kvlistValue":`, m.keyValue
		}
		o.raw(name)
		if err := m.list(o, val, depth+1, each); err != nil {
			return err
		}
	}
	o.raw("}")
	return o.check()
}

// list writes an ArrayValue or a KeyValueList, {"values":[...]} ({} when
// empty), with each element written by each; depth is the object's.
func (m *mapper) list(o *jsonOut, b []byte, depth int, each func(*jsonOut, []byte, int) error) error {
	if err := m.deep(depth + 1); err != nil {
		return err
	}
	o.raw("{")
	first := true
	f := walk(b)
	for f.next() {
		if !f.is(listValues, protowire.BytesType) {
			continue
		}
		if first {
			o.raw(`"values":[`)
		} else {
			o.raw(",")
		}
		first = false
		if err := each(o, f.val, depth+2); err != nil {
			return err
		}
	}
	if f.err != nil {
		return f.err
	}
	if !first {
		o.raw("]")
	}
	o.raw("}")
	return o.check()
}

// deep refuses nesting past MaxDepth, counted in the event: the event
// object is depth 1.
func (m *mapper) deep(depth int) error {
	if depth > m.lim.MaxDepth {
		return errorf(http.StatusRequestEntityTooLarge, "too_deep",
			"a log record nests deeper than %d levels as an event", m.lim.MaxDepth)
	}
	return nil
}

// text writes a protobuf string, refusing the record when it is not UTF-8
// (protobuf's own decoders refuse the whole request).
func (m *mapper) text(o *jsonOut, s []byte, what string) error {
	if !utf8.Valid(s) {
		return &recordError{what + " is not valid UTF-8"}
	}
	return o.str(s)
}
