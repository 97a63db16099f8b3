package decode

import (
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"

	"github.com/sluice-ingest/sluice/client/apierror"
	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

func tooManyEvents(max int) *body.Error {
	return body.Errorf(apierror.TooManyEvents, "request carries more than the limit of %d events", max)
}

// position is where the lexer is, for error messages: field[index]
// inside an array of events, or line of an NDJSON body. The body shapes
// set it; index is -1 outside an array.
type position struct {
	field string
	index int
	line  int
}

// At says where the lexer is: the event (as an element of its array, or
// a line) and the offset in the decoded body.
func (st *state) At(offset int64) string {
	pos := fmt.Sprintf("byte %d", offset)
	switch {
	case st.pos.line > 0:
		return fmt.Sprintf("line %d (%s)", st.pos.line, pos)
	case st.pos.index >= 0:
		return fmt.Sprintf("%s (%s)", elementName(st.pos.field, st.pos.index), pos)
	}
	return pos
}

func (st *state) TooDeep() *body.Error {
	return body.Errorf(apierror.TooDeep, "%s: objects and arrays nested deeper than the limit of %d levels", st.At(st.Offset()), st.MaxDepth)
}

func elementName(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }

// ReadError maps an error (other than io.EOF) met while reading the
// decoded body.
func (st *state) ReadError(err error) *body.Error {
	if e, ok := err.(*body.Error); ok { // ErrBusy, or a limit met while reading the zstd header
		return e
	}
	if e := st.wire.Err(); e != nil {
		return e
	}
	if e := st.dec.Err(); e != nil {
		return e
	}
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return st.windowTooLarge()
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return body.Errorf(apierror.MalformedBody, "%s body is truncated", st.enc)
	}
	return body.Errorf(apierror.MalformedBody, "%s body is corrupt: %v", st.enc, err)
}
