package otlp

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"

	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sluice-ingest/sluice/client/apierror"
	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

// jsonDepthOffset is how much deeper a record's content sits in the
// request body than in its event: the body, resourceLogs and its element,
// scopeLogs and its element, logRecords: six levels.
const jsonDepthOffset = 6

// translator turns a body in the OTLP JSON encoding into the protobuf
// wire form of the same ExportLogsServiceRequest, for the mapper to read:
// one mapping for both encodings. It drives body.Lexer over the decoded
// body by the OTLP schema, holding no more than the protobuf it writes
// (bounded by limit) and recursing no deeper than the lexer's MaxDepth.
type translator struct {
	lex     body.Lexer
	out     []byte // the protobuf
	limit   int
	scratch []byte // a key's or a value's decoded text
	acct    *account
	// maxDepth is the event's: the lexer's, less jsonDepthOffset.
	maxDepth int
}

// fromJSON translates in into t.out.
func (t *translator) fromJSON(in []byte, lim body.Limits, acct *account) error {
	*t = translator{out: t.out[:0], scratch: t.scratch[:0], acct: acct,
		limit:    int(min(lim.MaxDecodedBytes+lim.MaxDecodedBytes/4+64, math.MaxInt32)),
		maxDepth: lim.MaxDepth}
	t.lex.ResetBytes(in, t)
	t.lex.MaxDepth = lim.MaxDepth + jsonDepthOffset
	c, ok := t.lex.SkipSpace()
	if !ok {
		return body.ErrEmpty
	}
	if c != '{' {
		return t.syntax("the body must be a JSON object (an ExportLogsServiceRequest)")
	}
	if err := t.object(requestSchema, 1); err != nil {
		return err
	}
	if _, ok := t.lex.SkipSpace(); ok {
		return t.syntax("data after the request object")
	}
	return nil
}

// The lexer's hooks: the body is in memory, so it never grows or fails to
// read, and every position is a byte offset.
func (t *translator) Grow(int) error { return nil }

func (t *translator) ReadError(err error) *body.Error {
	return malformed("reading the JSON body: %v", err)
}

func (t *translator) At(offset int64) string { return fmt.Sprintf("JSON at byte %d", offset) }

func (t *translator) TooDeep() *body.Error {
	return body.Errorf(apierror.TooDeep,
		"the body nests deeper than %d levels (%d in a log record's event)", t.lex.MaxDepth, t.maxDepth)
}

func (t *translator) syntax(what string) *body.Error {
	return malformed("%s: %s", t.At(t.lex.Offset()), what)
}

func (t *translator) fieldError(f *field, what string) *body.Error {
	return malformed("JSON field %q at byte %d: %s", f.name, t.lex.Offset(), what)
}

// grown checks the protobuf written so far: within its limit, which no
// body within the decoded limit reaches (the protobuf form of OTLP JSON
// is smaller than the JSON: a tag for a quoted name, binary numbers and
// ids), and charged.
func (t *translator) grown() error {
	if len(t.out) > t.limit {
		return body.Errorf(apierror.DecodedTooLarge,
			"the request's protobuf form is larger than %d bytes", t.limit)
	}
	return t.acct.sync()
}

// object reads a JSON object of message m at depth, writing its fields;
// a member the schema does not know is read and dropped.
func (t *translator) object(m *message, depth int) error {
	if empty, err := t.lex.Open(nil, depth, '}'); empty || err != nil {
		return err
	}
	for {
		t.scratch = t.scratch[:0]
		if err := t.lex.Key(&t.scratch, true); err != nil {
			return err
		}
		var err error
		if f := m.fields[string(t.scratch)]; f != nil {
			err = t.field(f, depth+1)
		} else {
			err = t.lex.Value(nil, depth)
		}
		if err != nil {
			return err
		}
		if done, err := t.lex.Next(nil, '}'); done || err != nil {
			return err
		}
	}
}

// field reads the value of f (at depth) and writes it. null is the field
// left out.
func (t *translator) field(f *field, depth int) error {
	c, _ := t.lex.SkipSpace()
	if c == 'n' && t.lex.Match("null") {
		return nil
	}
	if !f.repeated {
		return t.value(f, depth, c)
	}
	if c != '[' {
		return t.fieldError(f, "expected an array")
	}
	if empty, err := t.lex.Open(nil, depth, ']'); empty || err != nil {
		return err
	}
	for {
		c, _ = t.lex.SkipSpace()
		if err := t.value(f, depth+1, c); err != nil {
			return err
		}
		if done, err := t.lex.Next(nil, ']'); done || err != nil {
			return err
		}
	}
}

// value reads one value of f, whose first byte is c, and writes it as
// field f.num.
func (t *translator) value(f *field, depth int, c byte) error {
	var err error
	switch f.kind {
	case kMessage:
		if c != '{' {
			return t.fieldError(f, "expected an object")
		}
		t.out = protowire.AppendTag(t.out, f.num, protowire.BytesType)
		start := t.open()
		if err := t.object(f.msg, depth); err != nil {
			return err
		}
		t.close(start)
	case kString, kBase64, kHex:
		if c != '"' {
			return t.fieldError(f, "expected a string")
		}
		t.out = protowire.AppendTag(t.out, f.num, protowire.BytesType)
		start := t.open()
		switch f.kind {
		case kString:
			err = t.lex.Str(&t.out, true)
		case kBase64:
			err = t.base64(f)
		case kHex:
			err = t.hex(f)
		}
		if err != nil {
			return err
		}
		t.close(start)
	case kBool:
		var v bool
		switch {
		case t.lex.Match("true"):
			v = true
		case t.lex.Match("false"):
		default:
			return t.fieldError(f, "expected true or false")
		}
		t.out = protowire.AppendTag(t.out, f.num, protowire.VarintType)
		t.out = protowire.AppendVarint(t.out, protowire.EncodeBool(v))
	default:
		err = t.number(f, c)
	}
	if err != nil {
		return err
	}
	return t.grown()
}

// open starts a length-delimited value: one byte for its length, which
// is all that most values need.
func (t *translator) open() int {
	t.out = append(t.out, 0)
	return len(t.out) - 1
}

// close writes the length of the value opened at start, moving the value
// when its length needs more than one byte. A byte is moved once for each
// enclosing value of 128 bytes or more, so at most MaxDepth times.
func (t *translator) close(start int) {
	n := len(t.out) - start - 1
	if n < 0x80 {
		t.out[start] = byte(n)
		return
	}
	size := protowire.SizeVarint(uint64(n))
	t.out = append(t.out, make([]byte, size-1)...)
	copy(t.out[start+size:], t.out[start+1:start+1+n])
	protowire.AppendVarint(t.out[start:start], uint64(n))
}

// number reads a number (or a string holding one, or an enum's name) for a
// numeric field, whose first byte is c, and writes it.
func (t *translator) number(f *field, c byte) error {
	t.scratch = t.scratch[:0]
	switch {
	case c == '"':
		if err := t.lex.Str(&t.scratch, true); err != nil {
			return err
		}
		if f.kind == kEnum {
			if v, ok := logspb.SeverityNumber_value[string(t.scratch)]; ok {
				t.out = protowire.AppendTag(t.out, f.num, protowire.VarintType)
				t.out = protowire.AppendVarint(t.out, uint64(v))
				return nil
			}
		}
		if f.kind == kDouble {
			switch string(t.scratch) {
			case "NaN":
				return t.double(f, math.NaN())
			case "Infinity":
				return t.double(f, math.Inf(1))
			case "-Infinity":
				return t.double(f, math.Inf(-1))
			}
		}
	case c == '-' || '0' <= c && c <= '9':
		if err := t.lex.Number(&t.scratch); err != nil {
			return err
		}
	default:
		return t.fieldError(f, "expected a number")
	}
	s := string(t.scratch)
	switch f.kind {
	case kDouble:
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return t.fieldError(f, "not a number: "+strconv.Quote(s))
		}
		return t.double(f, v)
	case kInt64, kEnum:
		bits := 64
		if f.kind == kEnum {
			bits = 32
		}
		v, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return t.fieldError(f, "not an integer of "+strconv.Itoa(bits)+" bits: "+strconv.Quote(s))
		}
		t.out = protowire.AppendTag(t.out, f.num, protowire.VarintType)
		t.out = protowire.AppendVarint(t.out, uint64(v))
	default: // kUint32, kFixed32, kFixed64
		bits := 32
		if f.kind == kFixed64 {
			bits = 64
		}
		v, err := strconv.ParseUint(s, 10, bits)
		if err != nil {
			return t.fieldError(f, "not an unsigned integer of "+strconv.Itoa(bits)+" bits: "+strconv.Quote(s))
		}
		switch f.kind {
		case kUint32:
			t.out = protowire.AppendTag(t.out, f.num, protowire.VarintType)
			t.out = protowire.AppendVarint(t.out, v)
		case kFixed32:
			t.out = protowire.AppendTag(t.out, f.num, protowire.Fixed32Type)
			t.out = protowire.AppendFixed32(t.out, uint32(v))
		default:
			t.out = protowire.AppendTag(t.out, f.num, protowire.Fixed64Type)
			t.out = protowire.AppendFixed64(t.out, v)
		}
	}
	return nil
}

func (t *translator) double(f *field, v float64) error {
	t.out = protowire.AppendTag(t.out, f.num, protowire.Fixed64Type)
	t.out = protowire.AppendFixed64(t.out, math.Float64bits(v))
	return nil
}

func (t *translator) base64(f *field) error {
	t.scratch = t.scratch[:0]
	if err := t.lex.Str(&t.scratch, true); err != nil {
		return err
	}
	// Protobuf's JSON mapping takes standard or URL-safe base64, padded
	// or not.
	enc := base64.StdEncoding
	for _, c := range t.scratch {
		if c == '-' || c == '_' {
			enc = base64.URLEncoding
			break
		}
	}
	if len(t.scratch)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	var err error
	if t.out, err = enc.AppendDecode(t.out, t.scratch); err != nil {
		return t.fieldError(f, "not base64")
	}
	return nil
}

// hex reads a trace or span id: OTLP JSON writes them in hex, not base64.
func (t *translator) hex(f *field) error {
	t.scratch = t.scratch[:0]
	if err := t.lex.Str(&t.scratch, true); err != nil {
		return err
	}
	var err error
	if t.out, err = hex.AppendDecode(t.out, t.scratch); err != nil {
		return t.fieldError(f, "not hex")
	}
	return nil
}
