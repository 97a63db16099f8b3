package otlp

import (
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sluice-ingest/sluice/client/apierror"
	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

// The values of an event: attributes, AnyValues (nested to MaxDepth) and
// the members of its objects, written from the protobuf in place.

// members writes the members of one JSON object, with the commas between
// them.
type members struct {
	o *jsonOut
	n int
}

func (w *members) key(name string) {
	w.o.key(w.n == 0, name)
	w.n++
}

// part appends members rendered before, with their leading comma.
func (w *members) part(b []byte) {
	if len(b) == 0 {
		return
	}
	if w.n == 0 {
		b = b[1:]
	}
	w.o.b = append(w.o.b, b...)
	w.n++
}

func (w *members) uint(name string, v uint64) {
	if v != 0 {
		w.key(name)
		w.o.uint(v)
	}
}

// textMember writes a string member unless s is empty.
func (m *mapper) textMember(w *members, name string, s []byte) error {
	if len(s) == 0 {
		return nil
	}
	w.key(name)
	return m.text(w.o, s, name)
}

// attributesMembers writes "attributes" (the KeyValues in field num of b,
// when attrs) and "droppedAttributesCount"; depth is the array's.
func (m *mapper) attributesMembers(w *members, b []byte, num protowire.Number, depth int, attrs bool, dropped uint64) error {
	if attrs {
		w.key("attributes")
		if err := m.attributes(w.o, b, num, depth); err != nil {
			return err
		}
	}
	w.uint("droppedAttributesCount", dropped)
	return nil
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
		return body.Errorf(apierror.TooDeep,
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
