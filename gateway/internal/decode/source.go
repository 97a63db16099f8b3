package decode

import (
	"errors"
	"io"
	"net/http"
	"os"

	"github.com/klauspost/compress/zstd"
)

// limitReader reads at most limit bytes from r; reading more fails with
// body_too_large (wire) or decoded_too_large. The first failure sticks, so
// the parser can tell a limit or a failing client from a corrupt compressed
// stream whatever the decompressor makes of the error it was handed.
type limitReader struct {
	r           io.Reader
	limit, left int64
	// wire marks the reader of the request body itself: its read errors are
	// the client's connection failing, not the body's content.
	wire bool
	err  *Error
}

func newLimitReader(r io.Reader, limit int64, wire bool) limitReader {
	return limitReader{r: r, limit: limit, left: limit, wire: wire}
}

func (l *limitReader) over() *Error {
	if l.wire {
		return errorf(http.StatusRequestEntityTooLarge, "body_too_large",
			"request body exceeds the limit of %d bytes on the wire", l.limit)
	}
	return errorf(http.StatusRequestEntityTooLarge, "decoded_too_large",
		"request body exceeds the limit of %d bytes after decompression", l.limit)
}

func (l *limitReader) Read(b []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if int64(len(b)) > l.left+1 {
		b = b[:l.left+1] // one byte past the limit tells that it was passed
	}
	n, err := l.r.Read(b)
	l.left -= int64(n)
	switch {
	case l.left < 0:
		l.err = l.over()
	case err == nil || err == io.EOF:
		return n, err
	case l.wire:
		l.err = bodyReadError(err, l.over)
	default:
		return n, err // a decompressor's error: readError names the encoding
	}
	return 0, l.err
}

// bodyReadError maps a failure to read the request body from the client.
func bodyReadError(err error, tooLarge func() *Error) *Error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errorf(http.StatusRequestTimeout, "request_timeout", "the request body was not received in time")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "malformed_body", "the request body ended before its announced length")
	}
	return errorf(http.StatusBadRequest, "malformed_body", "reading the request body: %v", err)
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
		return errorf(http.StatusBadRequest, "malformed_body", "%s body is truncated", st.enc)
	}
	return errorf(http.StatusBadRequest, "malformed_body", "%s body is corrupt: %v", st.enc, err)
}

// errEmpty is the answer to a body without a single non-blank byte.
var errEmpty = &Error{Status: http.StatusBadRequest, Code: "empty_body", Message: "request body is empty"}
