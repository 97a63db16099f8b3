package otlp

import (
	"google.golang.org/protobuf/encoding/protowire"
)

// fields walks the fields of one protobuf message in place: each value is a
// slice of the message's own bytes (or the integer it holds), so nothing a
// length prefix says is ever allocated. Groups are refused: no OTLP message
// has one, and skipping them would need a recursion of its own.
type fields struct {
	b   []byte
	num protowire.Number
	typ protowire.Type
	val []byte // BytesType
	x   uint64 // VarintType, Fixed32Type, Fixed64Type
	err error
}

func walk(b []byte) fields { return fields{b: b} }

// next reads the next field; false at the end or on an error (see err).
func (f *fields) next() bool {
	if len(f.b) == 0 || f.err != nil {
		return false
	}
	num, typ, n := protowire.ConsumeTag(f.b)
	if n < 0 {
		f.err = malformed("protobuf: bad field tag: %v", protowire.ParseError(n))
		return false
	}
	f.num, f.typ, f.b = num, typ, f.b[n:]
	switch typ {
	case protowire.VarintType:
		f.x, n = protowire.ConsumeVarint(f.b)
	case protowire.Fixed32Type:
		var v uint32
		v, n = protowire.ConsumeFixed32(f.b)
		f.x = uint64(v)
	case protowire.Fixed64Type:
		f.x, n = protowire.ConsumeFixed64(f.b)
	case protowire.BytesType:
		f.val, n = protowire.ConsumeBytes(f.b)
	default:
		f.err = malformed("protobuf: field %d has wire type %d, which no OTLP message uses", num, typ)
		return false
	}
	if n < 0 {
		f.err = malformed("protobuf: field %d: %v", num, protowire.ParseError(n))
		return false
	}
	f.b = f.b[n:]
	return true
}

// is reports whether the current field is number num of wire type typ. A
// known number with another wire type is an unknown field, as protobuf's
// own decoders take it.
func (f *fields) is(num protowire.Number, typ protowire.Type) bool {
	return f.num == num && f.typ == typ
}
