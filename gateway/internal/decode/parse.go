package decode

import (
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// readBufSize is the window of the decoded body the parser holds at once.
const readBufSize = 16 << 10

// state is one decoding: the input window, the output being built, and
// where the parser is. The parser is a hand-written JSON validator that
// copies every token to out and drops the whitespace between them, so the
// output is the compact form of the input (strings and numbers exactly as
// sent). It checks what encoding/json checks plus UTF-8 and the depth limit.
type state struct {
	d     *Decoder
	batch Batch

	in   []byte // input window; unread bytes are in[r:w]
	r, w int
	base int64 // offset of in[0] in the decoded body
	src  io.Reader
	rerr error // first error of src (io.EOF at the end)

	wire, dec limitReader
	enc       contentEncoding
	gz        *gzip.Reader
	// zs is the pooled zstd decoder (windows up to zstdPooledWindow);
	// zsOwn one made for this request's larger window, zsWindow the
	// largest window the one in use takes. zhead holds the first frame's
	// header, read before the decoder is chosen, and zin replays it.
	zs       *zstd.Decoder
	zsOwn    *zstd.Decoder
	zsWindow int64
	zhead    [zstd.HeaderMaxSize]byte
	zin      prefixReader
	// charged is what this decoding holds of the Decoder's budget.
	charged int64

	out    []byte
	events int
	ndjson bool

	// Where the parser is, for error messages: field[index] inside an
	// array of events, or line of an NDJSON body.
	field string
	index int
	line  int

	// The top-level object's keys (and which of "events" and "data" came
	// twice), and the array of events last read: start and end in out of
	// its first MaxEvents elements, how many it holds, and the first one
	// that is not an object.
	keys       keySet
	twice      keySet
	haveArray  bool
	arrayField string
	spans      []int
	count      int
	bad        int
	badKind    string
}

type keySet uint8

const (
	keyEvents keySet = 1 << iota
	keyData
	keyMeta // "version" or "token" of the classic collection
	keyOther
)

func (st *state) reset() {
	if st.zs != nil {
		_ = st.zs.Reset(nil) // drop the reference to the request body
	}
	if st.zsOwn != nil {
		st.zsOwn.Close()
	}
	*st = state{d: st.d, in: st.in, out: st.out[:0], spans: st.spans[:0], gz: st.gz, zs: st.zs}
}

func (st *state) decode(r io.Reader, enc contentEncoding, ndjson bool) error {
	st.ndjson, st.index = ndjson, -1
	if err := st.source(r, enc); err != nil {
		return err
	}
	if ndjson {
		return st.ndjsonBody()
	}
	return st.jsonBody()
}

// jsonBody reads a body in one of the JSON shapes: a bare array of events,
// {"events":[...]}, the classic {"version","token","data":[...]}, or one
// event object.
func (st *state) jsonBody() error {
	c, ok := st.skipSpace()
	if !ok {
		if st.rerr == io.EOF {
			return errEmpty
		}
		return st.readError(st.rerr)
	}
	switch {
	case c == '[':
		if err := st.eventsArray(1, "", true); err != nil {
			return err
		}
		if err := st.end(); err != nil {
			return err
		}
		return st.emitEvents("")
	case c == '{':
		if err := st.object(1, true); err != nil {
			return err
		}
		if err := st.end(); err != nil {
			return err
		}
		return st.classify()
	case kind(c) != "":
		return errorf(http.StatusBadRequest, "invalid_body", "body must be a JSON object or an array of objects, got %s", kind(c))
	}
	return st.syntax("invalid character %s at the start of the body", quoteByte(c))
}

// classify decides what the top-level object was: the wrapper when its only
// key is "events", the classic collection when it has "data" and nothing but
// "version" and "token" beside it, otherwise a single event. A wrapper or
// collection whose array key comes twice is refused (which array would be
// the events?); an event may repeat any key, as JSON allows.
func (st *state) classify() error {
	var field string
	switch {
	case st.keys == keyEvents:
		field = "events"
	case st.keys&keyData != 0 && st.keys&^(keyData|keyMeta) == 0:
		field = "data"
	default:
		st.out = append(st.out, '\n')
		st.events = 1
		return nil
	}
	if st.twice != 0 {
		return errorf(http.StatusBadRequest, "invalid_body", "key %q appears twice", field)
	}
	return st.emitEvents(field)
}

// emitEvents turns out, which holds the compact body, into one line per
// element of the array of events, moving each element down in place.
func (st *state) emitEvents(field string) error {
	lim := st.d.lim
	switch {
	case !st.haveArray || st.arrayField != field:
		return errorf(http.StatusBadRequest, "invalid_body", "%q must be an array of event objects", field)
	case st.bad >= 0:
		return errorf(http.StatusBadRequest, "invalid_event", "%s: each event must be a JSON object, got %s", elementName(field, st.bad), st.badKind)
	case st.count > lim.MaxEvents:
		return tooManyEvents(lim.MaxEvents)
	case st.count == 0:
		return errorf(http.StatusBadRequest, "no_events", "request carries no events")
	}
	// Each element starts after the '[' or ',' before it, so the write
	// position never passes the start of the element being moved.
	w := 0
	for i := 0; i < len(st.spans); i += 2 {
		w += copy(st.out[w:], st.out[st.spans[i]:st.spans[i+1]])
		st.out[w] = '\n'
		w++
	}
	st.out = st.out[:w]
	st.events = st.count
	return nil
}

// ndjsonBody reads one event object per line; blank lines are skipped.
func (st *state) ndjsonBody() error {
	lim := st.d.lim
	blank := true
	for st.line = 1; ; {
		c, ok := st.skipSpace()
		if !ok {
			break
		}
		if c == '\n' {
			st.r++
			st.line++
			continue
		}
		blank = false
		if k := kind(c); c != '{' && k != "" {
			return errorf(http.StatusBadRequest, "invalid_event", "line %d: each event must be a JSON object, got %s", st.line, k)
		}
		if st.events == lim.MaxEvents {
			return tooManyEvents(lim.MaxEvents)
		}
		if err := st.value(0); err != nil {
			return err
		}
		st.out = append(st.out, '\n')
		st.events++
		if c, ok = st.skipSpace(); ok && c != '\n' {
			return st.syntax("invalid character %s after the event (one event per line)", quoteByte(c))
		}
	}
	if st.rerr != io.EOF {
		return st.readError(st.rerr)
	}
	if blank {
		return errEmpty
	}
	return nil
}

// end checks that nothing but whitespace follows the body's value, reading
// to the end so a truncated or corrupt compressed stream is noticed.
func (st *state) end() error {
	if c, ok := st.skipSpace(); ok {
		return st.syntax("unexpected %s after the JSON value (send several events as an array, or as application/x-ndjson)", quoteByte(c))
	}
	if st.rerr != io.EOF {
		return st.readError(st.rerr)
	}
	return nil
}

// eventsArray reads an array whose elements are events, writing it compact
// to out and noting where each element is. When strict (the array is the
// body), a non-object element or one too many ends decoding at once;
// otherwise (the array is a value in the top-level object, which may turn
// out to be an event itself) they are noted for emitEvents.
func (st *state) eventsArray(depth int, field string, strict bool) error {
	lim := st.d.lim
	st.spans, st.count, st.bad = st.spans[:0], 0, -1
	st.haveArray, st.arrayField, st.field = true, field, field
	if empty, err := st.open(depth, ']'); empty || err != nil {
		return err
	}
	for {
		c, ok := st.skipSpace()
		if !ok {
			return st.ended("inside an array")
		}
		st.index = st.count
		if k := kind(c); c != '{' && k != "" {
			if strict {
				return errorf(http.StatusBadRequest, "invalid_event", "%s: each event must be a JSON object, got %s", elementName(field, st.count), k)
			}
			if st.bad < 0 {
				st.bad, st.badKind = st.count, k
			}
		}
		if strict && st.count == lim.MaxEvents {
			return tooManyEvents(lim.MaxEvents)
		}
		start := len(st.out)
		if err := st.value(depth); err != nil {
			return err
		}
		if st.count < lim.MaxEvents {
			st.spans = append(st.spans, start, len(st.out))
		}
		st.count++
		done, err := st.next(']')
		if err != nil {
			return err
		}
		if done {
			st.index = -1
			return nil
		}
	}
}

// value reads any JSON value at the given depth of its container.
func (st *state) value(depth int) error {
	c, ok := st.skipSpace()
	if !ok {
		return st.ended("where a value was expected")
	}
	switch c {
	case '{':
		return st.object(depth+1, false)
	case '[':
		return st.array(depth + 1)
	case '"':
		return st.str()
	case 't':
		return st.literal("true")
	case 'f':
		return st.literal("false")
	case 'n':
		return st.literal("null")
	}
	if c == '-' || isDigit(c) {
		return st.number()
	}
	return st.syntax("invalid character %s where a value was expected", quoteByte(c))
}

// object reads an object. top marks the body's own object, whose keys are
// noted and whose "events" and "data" arrays are read as arrays of events.
func (st *state) object(depth int, top bool) error {
	if empty, err := st.open(depth, '}'); empty || err != nil {
		return err
	}
	for {
		c, ok := st.skipSpace()
		if !ok {
			return st.ended("inside an object")
		}
		if c != '"' {
			return st.syntax("invalid character %s where an object key was expected", quoteByte(c))
		}
		keyStart := len(st.out)
		if err := st.str(); err != nil {
			return err
		}
		if c, ok = st.skipSpace(); !ok {
			return st.ended("inside an object")
		}
		if c != ':' {
			return st.syntax("invalid character %s after an object key (want :)", quoteByte(c))
		}
		st.r++
		st.out = append(st.out, ':')
		var err error
		if top {
			err = st.topValue(st.out[keyStart : len(st.out)-1])
		} else {
			err = st.value(depth)
		}
		if err != nil {
			return err
		}
		if done, err := st.next('}'); done || err != nil {
			return err
		}
	}
}

// topValue reads the value of key (quoted, as sent) in the body's object.
func (st *state) topValue(key []byte) error {
	var k keySet
	field := ""
	switch string(key) { // no allocation: the conversion is only compared
	case `"events"`:
		k, field = keyEvents, "events"
	case `"data"`:
		k, field = keyData, "data"
	case `"version"`, `"token"`:
		k = keyMeta
	default:
		k = keyOther
	}
	if field != "" && st.keys&k != 0 {
		st.twice |= k
	}
	st.keys |= k
	if c, ok := st.skipSpace(); ok && c == '[' && field != "" {
		return st.eventsArray(2, field, false)
	}
	return st.value(1)
}

func (st *state) array(depth int) error {
	if empty, err := st.open(depth, ']'); empty || err != nil {
		return err
	}
	for {
		if err := st.value(depth); err != nil {
			return err
		}
		if done, err := st.next(']'); done || err != nil {
			return err
		}
	}
}

// open copies the opening bracket of a container at depth; empty reports
// that the closing one followed, and was copied too.
func (st *state) open(depth int, closing byte) (empty bool, err error) {
	if depth > st.d.lim.MaxDepth {
		return false, st.tooDeep()
	}
	st.take()
	c, ok := st.skipSpace()
	if !ok {
		return false, st.ended("inside " + container(closing))
	}
	if c == closing {
		st.take()
		return true, nil
	}
	return false, nil
}

// next copies what follows a member of a container: a comma, or the
// closing bracket (done).
func (st *state) next(closing byte) (done bool, err error) {
	c, ok := st.skipSpace()
	if !ok {
		return false, st.ended("inside " + container(closing))
	}
	if c != ',' && c != closing {
		return false, st.syntax("invalid character %s in %s (want , or %c)", quoteByte(c), container(closing), closing)
	}
	st.take()
	return c == closing, nil
}

func container(closing byte) string {
	if closing == '}' {
		return "an object"
	}
	return "an array"
}

// str copies a string, checking its escapes and its UTF-8.
func (st *state) str() error {
	st.r++
	st.out = append(st.out, '"')
	for {
		i := st.r
		for i < st.w {
			if c := st.in[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
				break
			}
			i++
		}
		st.out = append(st.out, st.in[st.r:i]...)
		st.r = i
		if st.r == st.w {
			if !st.fill() {
				return st.ended("inside a string")
			}
			continue
		}
		switch c := st.in[st.r]; {
		case c == '"':
			st.r++
			st.out = append(st.out, '"')
			return nil
		case c == '\\':
			if err := st.escape(); err != nil {
				return err
			}
		case c < 0x20:
			return st.syntax("control character %s in a string (escape it)", quoteByte(c))
		default:
			st.ensure(utf8.UTFMax)
			r, size := utf8.DecodeRune(st.in[st.r:st.w])
			if r == utf8.RuneError && size <= 1 {
				if !utf8.FullRune(st.in[st.r:st.w]) {
					return st.ended("inside a UTF-8 character")
				}
				return st.syntax("invalid UTF-8 in a string")
			}
			st.out = append(st.out, st.in[st.r:st.r+size]...)
			st.r += size
		}
	}
}

func (st *state) escape() error {
	if !st.ensure(2) {
		return st.ended("inside a string escape")
	}
	switch st.in[st.r+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		st.out = append(st.out, st.in[st.r:st.r+2]...)
		st.r += 2
		return nil
	case 'u':
		if !st.ensure(6) {
			return st.ended("inside a string escape")
		}
		for _, h := range st.in[st.r+2 : st.r+6] {
			if !isHex(h) {
				return st.syntax("invalid \\u escape in a string")
			}
		}
		st.out = append(st.out, st.in[st.r:st.r+6]...)
		st.r += 6
		return nil
	}
	return st.syntax("invalid escape \\%c in a string", st.in[st.r+1])
}

// number copies a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (st *state) number() error {
	c, ok := st.peek()
	if c == '-' {
		st.take()
		c, ok = st.peek()
	}
	switch {
	case ok && c == '0':
		st.take()
	case ok && isDigit(c):
		st.digits()
	default:
		return st.syntax("invalid number: want a digit after -")
	}
	if c, ok = st.peek(); ok && c == '.' {
		st.take()
		if c, ok = st.peek(); !ok || !isDigit(c) {
			return st.syntax("invalid number: want a digit after the decimal point")
		}
		st.digits()
		c, ok = st.peek()
	}
	if ok && (c == 'e' || c == 'E') {
		st.take()
		if c, ok = st.peek(); ok && (c == '+' || c == '-') {
			st.take()
			c, ok = st.peek()
		}
		if !ok || !isDigit(c) {
			return st.syntax("invalid number: want a digit in the exponent")
		}
		st.digits()
	}
	return nil
}

func (st *state) digits() {
	for {
		i := st.r
		for i < st.w && isDigit(st.in[i]) {
			i++
		}
		st.out = append(st.out, st.in[st.r:i]...)
		st.r = i
		if i < st.w || !st.fill() {
			return
		}
	}
}

func (st *state) literal(lit string) error {
	for i := range len(lit) {
		c, ok := st.peek()
		if !ok {
			return st.ended("inside " + lit)
		}
		if c != lit[i] {
			return st.syntax("invalid character %s in literal %s", quoteByte(c), lit)
		}
		st.r++
	}
	st.out = append(st.out, lit...)
	return nil
}

// skipSpace skips whitespace and returns the next byte without consuming
// it; false at the end of the input or on a read error (see rerr). In an
// NDJSON body a newline ends an event, so it is not whitespace.
func (st *state) skipSpace() (byte, bool) {
	for {
		for st.r < st.w {
			switch c := st.in[st.r]; c {
			case ' ', '\t', '\r':
				st.r++
			case '\n':
				if st.ndjson {
					return c, true
				}
				st.r++
			default:
				return c, true
			}
		}
		if !st.fill() {
			return 0, false
		}
	}
}

func (st *state) peek() (byte, bool) {
	if st.r == st.w && !st.fill() {
		return 0, false
	}
	return st.in[st.r], true
}

func (st *state) take() {
	st.out = append(st.out, st.in[st.r])
	st.r++
}

// ensure tries to have n unread bytes in the window; false when the input
// ends first.
func (st *state) ensure(n int) bool {
	for st.w-st.r < n {
		if !st.fill() {
			return false
		}
	}
	return true
}

// fill reads more input into the window, keeping the unread bytes. It
// returns false when nothing more can be read; rerr says why.
func (st *state) fill() bool {
	if st.rerr != nil {
		return false
	}
	if st.r > 0 {
		st.w = copy(st.in, st.in[st.r:st.w])
		st.base += int64(st.r)
		st.r = 0
	}
	for range 100 {
		n, err := st.src.Read(st.in[st.w:])
		st.w += n
		if n > 0 {
			if berr := st.reserveOut(); berr != nil {
				st.rerr = berr
				return false
			}
		}
		if err != nil {
			st.rerr = err
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
	st.rerr = io.ErrNoProgress
	return false
}

// ended is the error for input that ended, or failed, where more was needed.
func (st *state) ended(where string) *Error {
	if st.rerr != io.EOF {
		return st.readError(st.rerr)
	}
	return st.syntax("body ends %s", where)
}

func (st *state) syntax(format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, "malformed_body", "%s: %s", st.at(), fmt.Sprintf(format, args...))
}

func (st *state) tooDeep() *Error {
	return errorf(http.StatusRequestEntityTooLarge, "too_deep", "%s: objects and arrays nested deeper than the limit of %d levels", st.at(), st.d.lim.MaxDepth)
}

func tooManyEvents(max int) *Error {
	return errorf(http.StatusRequestEntityTooLarge, "too_many_events", "request carries more than the limit of %d events", max)
}

// at says where the parser is: the event (as an element of its array, or a
// line) and the offset in the decoded body.
func (st *state) at() string {
	pos := fmt.Sprintf("byte %d", st.base+int64(st.r))
	switch {
	case st.line > 0:
		return fmt.Sprintf("line %d (%s)", st.line, pos)
	case st.index >= 0:
		return fmt.Sprintf("%s (%s)", elementName(st.field, st.index), pos)
	}
	return pos
}

func elementName(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }

// kind names the JSON value that starts with c, or "" when none does.
func kind(c byte) string {
	switch {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || isDigit(c):
		return "a number"
	}
	return ""
}

func quoteByte(c byte) string {
	if c < 0x20 || c >= 0x7f {
		return fmt.Sprintf("byte 0x%02x", c)
	}
	return fmt.Sprintf("%q", c)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'f' }
