package otlp

import (
	"encoding/base64"
	"encoding/hex"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sluice-ingest/sluice/client/apierror"
)

// jsonDepthOffset is how much deeper a record's content sits in the
// request body than in its event: the body, resourceLogs and its element,
// scopeLogs and its element, logRecords: six levels.
const jsonDepthOffset = 6

// translator turns a body in the OTLP JSON encoding into the protobuf
// wire form of the same ExportLogsServiceRequest, for the mapper to read:
// one mapping for both encodings. It is a recursive-descent parser over
// the decoded body, holding no more than the protobuf it writes (bounded
// by limit) and recursing no deeper than maxDepth.
type translator struct {
	in       []byte
	pos      int
	out      []byte // the protobuf
	limit    int
	maxDepth int
	scratch  []byte // a string's decoded bytes
	acct     *account
}

// fromJSON translates in into t.out.
func (t *translator) fromJSON(in []byte, lim Limits, acct *account) error {
	*t = translator{in: in, out: t.out[:0], scratch: t.scratch[:0], acct: acct,
		limit:    int(min(lim.MaxDecodedBytes+lim.MaxDecodedBytes/4+64, math.MaxInt32)),
		maxDepth: lim.MaxDepth + jsonDepthOffset}
	t.space()
	if t.pos == len(t.in) {
		return errorf(apierror.EmptyBody, "request body is empty")
	}
	if t.in[t.pos] != '{' {
		return t.syntax("the body must be a JSON object (an ExportLogsServiceRequest)")
	}
	if err := t.object(requestSchema, 1); err != nil {
		return err
	}
	t.space()
	if t.pos != len(t.in) {
		return t.syntax("data after the request object")
	}
	return nil
}

func (t *translator) syntax(what string) *Error {
	return malformed("JSON at byte %d: %s", t.pos, what)
}

func (t *translator) fieldError(f *field, what string) *Error {
	return malformed("JSON field %q at byte %d: %s", f.name, t.pos, what)
}

func (t *translator) space() {
	for t.pos < len(t.in) {
		switch t.in[t.pos] {
		case ' ', '\t', '\n', '\r':
			t.pos++
		default:
			return
		}
	}
}

// consume skips space and then c, or fails.
func (t *translator) consume(c byte) error {
	t.space()
	if t.pos >= len(t.in) {
		return t.syntax("the body ends early")
	}
	if t.in[t.pos] != c {
		return t.syntax("expected " + strconv.QuoteRune(rune(c)) + ", found " + strconv.QuoteRune(rune(t.in[t.pos])))
	}
	t.pos++
	return nil
}

// peek skips space and returns the next byte (0 at the end).
func (t *translator) peek() byte {
	t.space()
	if t.pos >= len(t.in) {
		return 0
	}
	return t.in[t.pos]
}

// null consumes a literal null if one is next.
func (t *translator) null() bool {
	if t.peek() == 'n' && len(t.in)-t.pos >= 4 && string(t.in[t.pos:t.pos+4]) == "null" {
		t.pos += 4
		return true
	}
	return false
}

func (t *translator) deep(depth int) error {
	if depth > t.maxDepth {
		return errorf(apierror.TooDeep,
			"the body nests deeper than %d levels (%d in a log record's event)", t.maxDepth, t.maxDepth-jsonDepthOffset)
	}
	return nil
}

// grown checks the protobuf written so far: within its limit, which no
// body within the decoded limit reaches (the protobuf form of OTLP JSON
// is smaller than the JSON: a tag for a quoted name, binary numbers and
// ids), and charged.
func (t *translator) grown() error {
	if len(t.out) > t.limit {
		return errorf(apierror.DecodedTooLarge,
			"the request's protobuf form is larger than %d bytes", t.limit)
	}
	return t.acct.sync()
}

// object reads a JSON object of message m at depth, writing its fields.
func (t *translator) object(m *message, depth int) error {
	if err := t.deep(depth); err != nil {
		return err
	}
	if err := t.consume('{'); err != nil {
		return err
	}
	if t.peek() == '}' {
		t.pos++
		return nil
	}
	for {
		if t.peek() != '"' {
			return t.syntax("expected a member name")
		}
		var err error
		t.scratch, err = t.str(t.scratch[:0])
		if err != nil {
			return err
		}
		if err := t.consume(':'); err != nil {
			return err
		}
		if f := m.fields[string(t.scratch)]; f != nil {
			err = t.field(f, depth+1)
		} else {
			err = t.skip(depth + 1)
		}
		if err != nil {
			return err
		}
		switch t.peek() {
		case ',':
			t.pos++
		case '}':
			t.pos++
			return nil
		default:
			return t.syntax("expected ',' or '}' after a member")
		}
	}
}

// field reads the value of f (at depth) and writes it. null is the field
// left out.
func (t *translator) field(f *field, depth int) error {
	if t.null() {
		return nil
	}
	if !f.repeated {
		return t.value(f, depth)
	}
	if t.peek() != '[' {
		return t.fieldError(f, "expected an array")
	}
	if err := t.deep(depth); err != nil {
		return err
	}
	t.pos++
	if t.peek() == ']' {
		t.pos++
		return nil
	}
	for {
		if err := t.value(f, depth+1); err != nil {
			return err
		}
		switch t.peek() {
		case ',':
			t.pos++
		case ']':
			t.pos++
			return nil
		default:
			return t.syntax("expected ',' or ']' in an array")
		}
	}
}

// value reads one value of f and writes it as field f.num.
func (t *translator) value(f *field, depth int) error {
	var err error
	switch f.kind {
	case kMessage:
		if t.peek() != '{' {
			return t.fieldError(f, "expected an object")
		}
		t.out = protowire.AppendTag(t.out, f.num, protowire.BytesType)
		start := t.open()
		if err := t.object(f.msg, depth); err != nil {
			return err
		}
		t.close(start)
	case kString, kBase64, kHex:
		if t.peek() != '"' {
			return t.fieldError(f, "expected a string")
		}
		t.out = protowire.AppendTag(t.out, f.num, protowire.BytesType)
		start := t.open()
		switch f.kind {
		case kString:
			t.out, err = t.str(t.out)
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
		case t.literal("true"):
			v = true
		case t.literal("false"):
		default:
			return t.fieldError(f, "expected true or false")
		}
		t.out = protowire.AppendTag(t.out, f.num, protowire.VarintType)
		t.out = protowire.AppendVarint(t.out, protowire.EncodeBool(v))
	default:
		err = t.number(f)
	}
	if err != nil {
		return err
	}
	return t.grown()
}

func (t *translator) literal(s string) bool {
	if len(t.in)-t.pos >= len(s) && string(t.in[t.pos:t.pos+len(s)]) == s {
		t.pos += len(s)
		return true
	}
	return false
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
// numeric field and writes it.
func (t *translator) number(f *field) error {
	var tok []byte
	if t.peek() == '"' {
		var err error
		t.scratch, err = t.str(t.scratch[:0])
		if err != nil {
			return err
		}
		tok = t.scratch
		if f.kind == kEnum {
			if v, ok := logspb.SeverityNumber_value[string(tok)]; ok {
				t.out = protowire.AppendTag(t.out, f.num, protowire.VarintType)
				t.out = protowire.AppendVarint(t.out, uint64(v))
				return nil
			}
		}
		if f.kind == kDouble {
			switch string(tok) {
			case "NaN":
				return t.double(f, math.NaN())
			case "Infinity":
				return t.double(f, math.Inf(1))
			case "-Infinity":
				return t.double(f, math.Inf(-1))
			}
		}
	} else {
		var ok bool
		if tok, ok = t.numberToken(); !ok {
			return t.fieldError(f, "expected a number")
		}
	}
	s := string(tok)
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

// numberToken reads a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (t *translator) numberToken() ([]byte, bool) {
	start, in, i := t.pos, t.in, t.pos
	digits := func() bool {
		j := i
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
		return i > j
	}
	if i < len(in) && in[i] == '-' {
		i++
	}
	switch {
	case i < len(in) && in[i] == '0':
		i++
	case !digits():
		return nil, false
	}
	if i < len(in) && in[i] == '.' {
		i++
		if !digits() {
			return nil, false
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		if !digits() {
			return nil, false
		}
	}
	t.pos = i
	return in[start:i], true
}

func (t *translator) base64(f *field) error {
	var err error
	t.scratch, err = t.str(t.scratch[:0])
	if err != nil {
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
	if t.out, err = enc.AppendDecode(t.out, t.scratch); err != nil {
		return t.fieldError(f, "not base64")
	}
	return nil
}

// hex reads a trace or span id: OTLP JSON writes them in hex, not base64.
func (t *translator) hex(f *field) error {
	var err error
	t.scratch, err = t.str(t.scratch[:0])
	if err != nil {
		return err
	}
	if t.out, err = hex.AppendDecode(t.out, t.scratch); err != nil {
		return t.fieldError(f, "not hex")
	}
	return nil
}

// str reads a JSON string, appending its decoded text to dst. Invalid
// UTF-8 and control characters are refused; a lone surrogate escape
// becomes U+FFFD, as encoding/json does.
func (t *translator) str(dst []byte) ([]byte, error) {
	in := t.in
	i := t.pos + 1 // past the quote
	for {
		start := i
		for i < len(in) && in[i] >= 0x20 && in[i] != '"' && in[i] != '\\' && in[i] < utf8.RuneSelf {
			i++
		}
		dst = append(dst, in[start:i]...)
		if i >= len(in) {
			t.pos = i
			return dst, t.syntax("the body ends inside a string")
		}
		switch c := in[i]; {
		case c == '"':
			t.pos = i + 1
			return dst, nil
		case c < 0x20:
			t.pos = i
			return dst, t.syntax("control character in a string")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(in[i:])
			if r == utf8.RuneError && size == 1 {
				t.pos = i
				return dst, t.syntax("invalid UTF-8")
			}
			dst = append(dst, in[i:i+size]...)
			i += size
		default: // backslash
			if i+1 >= len(in) {
				t.pos = i
				return dst, t.syntax("the body ends inside a string")
			}
			esc := in[i+1]
			i += 2
			switch esc {
			case '"', '\\', '/':
				dst = append(dst, esc)
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r, ok := hex4(in, i)
				if !ok {
					t.pos = i
					return dst, t.syntax(`bad \u escape`)
				}
				i += 4
				if utf16.IsSurrogate(r) {
					if r2, ok := hex4(in, i+2); ok && in[i] == '\\' && in[i+1] == 'u' {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							r = d
							i += 6
						} else {
							r = utf8.RuneError
						}
					} else {
						r = utf8.RuneError
					}
				}
				dst = utf8.AppendRune(dst, r)
			default:
				t.pos = i - 1
				return dst, t.syntax("bad escape in a string")
			}
		}
		if len(dst) > t.limit {
			return dst, t.grown()
		}
	}
}

// hex4 reads the four hex digits of a \u escape at in[i:].
func hex4(in []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(in) {
		return 0, false
	}
	var r rune
	for _, c := range in[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// skip reads and validates a value of a field the mapping does not know,
// writing nothing.
func (t *translator) skip(depth int) error {
	switch c := t.peek(); {
	case c == '{' || c == '[':
		if err := t.deep(depth); err != nil {
			return err
		}
		t.pos++
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		if t.peek() == end {
			t.pos++
			return nil
		}
		for {
			if c == '{' {
				if t.peek() != '"' {
					return t.syntax("expected a member name")
				}
				var err error
				if t.scratch, err = t.str(t.scratch[:0]); err != nil {
					return err
				}
				if err := t.consume(':'); err != nil {
					return err
				}
			}
			if err := t.skip(depth + 1); err != nil {
				return err
			}
			switch t.peek() {
			case ',':
				t.pos++
			case end:
				t.pos++
				return nil
			default:
				return t.syntax("expected ',' or '" + string(end) + "'")
			}
		}
	case c == '"':
		var err error
		t.scratch, err = t.str(t.scratch[:0])
		return err
	case c == 't':
		if t.literal("true") {
			return nil
		}
	case c == 'f':
		if t.literal("false") {
			return nil
		}
	case c == 'n':
		if t.null() {
			return nil
		}
	default:
		if _, ok := t.numberToken(); ok {
			return nil
		}
	}
	if t.pos >= len(t.in) {
		return t.syntax("the body ends early")
	}
	return t.syntax("invalid value")
}
