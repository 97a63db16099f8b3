package body

import (
	"fmt"
	"io"

	"github.com/sluice-ingest/sluice/client/apierror"
)

// Lexer is the gateway's one JSON lexer: it reads a decoded body through
// a fixed window, or all of it held in memory (ResetBytes), and checks
// what encoding/json checks plus UTF-8 and the depth limit. Tokens and
// values are appended to the dst they are given (nil: checked, not kept).
// It knows nothing of body shapes or schemas: its callers drive it.
type Lexer struct {
	in   []byte // window; unread bytes are in[r:w]
	r, w int
	base int64 // offset of in[0] in the body
	src  io.Reader
	rerr error // first error of src (io.EOF at the end)
	// Newlines marks an NDJSON body: a newline ends an event, so it is
	// not whitespace.
	Newlines bool
	// MaxDepth bounds the nesting of containers (Open).
	MaxDepth int
	hooks    Hooks
}

// Hooks is what a decoding provides to its Lexer.
type Hooks interface {
	// Grow makes room for need bytes in the output the lexer appends to:
	// the compact copy of all input read so far, and a newline.
	Grow(need int) error
	// ReadError maps an error other than io.EOF met reading the source.
	ReadError(err error) *Error
	// At names where the lexer is, offset bytes into the body: the
	// start of its syntax errors.
	At(offset int64) string
	// TooDeep refuses a container nested past MaxDepth.
	TooDeep() *Error
}

// Reset makes l read src through the window in.
func (l *Lexer) Reset(in []byte, src io.Reader, hooks Hooks) {
	*l = Lexer{in: in, src: src, hooks: hooks}
}

// ResetBytes makes l read b, which it holds whole: nothing is copied.
func (l *Lexer) ResetBytes(b []byte, hooks Hooks) {
	*l = Lexer{in: b, w: len(b), rerr: io.EOF, hooks: hooks}
}

// Offset is the position of the next byte in the body.
func (l *Lexer) Offset() int64 { return l.base + int64(l.r) }

// SkipSpace skips whitespace and returns the next byte without consuming
// it; false at the end of the input or on a read error (see Failed).
func (l *Lexer) SkipSpace() (byte, bool) {
	if c, ok := l.nonSpace(); ok {
		return c, true
	}
	return l.skipSpace()
}

// nonSpace is SkipSpace's inlined fast path: the next byte when it is in
// the window and not whitespace, as it is between the tokens of compact
// JSON.
func (l *Lexer) nonSpace() (byte, bool) {
	if l.r < l.w {
		if c := l.in[l.r]; c > ' ' {
			return c, true
		}
	}
	return 0, false
}

func (l *Lexer) skipSpace() (byte, bool) {
	for {
		for l.r < l.w {
			switch c := l.in[l.r]; c {
			case ' ', '\t', '\r':
				l.r++
			case '\n':
				if l.Newlines {
					return c, true
				}
				l.r++
			default:
				return c, true
			}
		}
		if !l.fill() {
			return 0, false
		}
	}
}

func (l *Lexer) peek() (byte, bool) {
	if l.r == l.w && !l.fill() {
		return 0, false
	}
	return l.in[l.r], true
}

// Take consumes the next byte, appending it to dst unless nil.
func (l *Lexer) Take(dst *[]byte) {
	if dst != nil {
		*dst = append(*dst, l.in[l.r])
	}
	l.r++
}

// ensure tries to have n unread bytes in the window; false when the input
// ends first.
func (l *Lexer) ensure(n int) bool {
	for l.w-l.r < n {
		if !l.fill() {
			return false
		}
	}
	return true
}

// fill reads more input into the window, keeping the unread bytes, and
// has the output grown for it. It returns false when nothing more can be
// read; rerr says why.
func (l *Lexer) fill() bool {
	if l.rerr != nil {
		return false
	}
	if l.r > 0 {
		l.w = copy(l.in, l.in[l.r:l.w])
		l.base += int64(l.r)
		l.r = 0
	}
	for range 100 {
		n, err := l.src.Read(l.in[l.w:])
		l.w += n
		if n > 0 {
			if gerr := l.hooks.Grow(int(l.base) + l.w + 1); gerr != nil {
				l.rerr = gerr
				return false
			}
		}
		if err != nil {
			l.rerr = err
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
	l.rerr = io.ErrNoProgress
	return false
}

// Failed is the error for input that ended, or failed, where more was
// needed; nil at a clean end.
func (l *Lexer) Failed() *Error {
	if l.rerr == io.EOF {
		return nil
	}
	return l.hooks.ReadError(l.rerr)
}

// Ended is the error for input that ended, or failed, where more was
// needed: where says where ("inside an array").
func (l *Lexer) Ended(where string) *Error {
	if err := l.Failed(); err != nil {
		return err
	}
	return l.Syntax("body ends %s", where)
}

// Syntax is a malformed_body refusal at the lexer's position.
func (l *Lexer) Syntax(format string, args ...any) *Error {
	return Errorf(apierror.MalformedBody, "%s: %s", l.hooks.At(l.Offset()), fmt.Sprintf(format, args...))
}

// QuoteByte shows c in an error message.
func QuoteByte(c byte) string {
	if c < 0x20 || c >= 0x7f {
		return fmt.Sprintf("byte 0x%02x", c)
	}
	return fmt.Sprintf("%q", c)
}
