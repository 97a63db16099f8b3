package decode

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/klauspost/compress/zstd"

	"github.com/sluice-ingest/sluice/client/apierror"
)

// Error is a refusal of client input: it maps to Status (the catalogue's
// for Code) with a JSON body {"error": Code, "message": Message}. Status is
// a 4xx, but for ErrBusy.
type Error struct {
	Status  int
	Code    apierror.Code
	Message string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

func errorf(code apierror.Code, format string, args ...any) *Error {
	return &Error{Status: code.Status(), Code: code, Message: fmt.Sprintf(format, args...)}
}

// errEmpty is the answer to a body without a single non-blank byte.
var errEmpty = errorf(apierror.EmptyBody, "request body is empty")

func tooManyEvents(max int) *Error {
	return errorf(apierror.TooManyEvents, "request carries more than the limit of %d events", max)
}

// position is where the parser is, for error messages: field[index]
// inside an array of events, or line of an NDJSON body. The body shapes
// set it; index is -1 outside an array.
type position struct {
	field string
	index int
	line  int
}

// ended is the error for input that ended, or failed, where more was needed.
func (p *parser) ended(where string) *Error {
	if err := p.failed(); err != nil {
		return err
	}
	return p.syntax("body ends %s", where)
}

func (p *parser) syntax(format string, args ...any) *Error {
	return errorf(apierror.MalformedBody, "%s: %s", p.at(), fmt.Sprintf(format, args...))
}

func (p *parser) tooDeep() *Error {
	return errorf(apierror.TooDeep, "%s: objects and arrays nested deeper than the limit of %d levels", p.at(), p.maxDepth)
}

// at says where the parser is: the event (as an element of its array, or a
// line) and the offset in the decoded body.
func (p *parser) at() string {
	pos := fmt.Sprintf("byte %d", p.base+int64(p.r))
	switch {
	case p.pos.line > 0:
		return fmt.Sprintf("line %d (%s)", p.pos.line, pos)
	case p.pos.index >= 0:
		return fmt.Sprintf("%s (%s)", elementName(p.pos.field, p.pos.index), pos)
	}
	return pos
}

func elementName(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }

func quoteByte(c byte) string {
	if c < 0x20 || c >= 0x7f {
		return fmt.Sprintf("byte 0x%02x", c)
	}
	return fmt.Sprintf("%q", c)
}

// bodyReadError maps a failure to read the request body from the client.
func bodyReadError(err error, tooLarge func() *Error) *Error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errorf(apierror.RequestTimeout, "the request body was not received in time")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(apierror.MalformedBody, "the request body ended before its announced length")
	}
	return errorf(apierror.MalformedBody, "reading the request body: %v", err)
}

// readError maps an error (other than io.EOF) met while reading the decoded
// body.
func (st *state) readError(err error) *Error {
	if e, ok := err.(*Error); ok { // ErrBusy, or a limit met while reading the zstd header
		return e
	}
	if st.wire.err != nil {
		return st.wire.err
	}
	if st.dec.err != nil {
		return st.dec.err
	}
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return st.windowTooLarge()
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errorf(apierror.MalformedBody, "%s body is truncated", st.enc)
	}
	return errorf(apierror.MalformedBody, "%s body is corrupt: %v", st.enc, err)
}
