package body

import (
	"errors"
	"io"
	"net/http"
	"os"

	"github.com/sluice-ingest/sluice/client/apierror"
)

// LimitReader reads at most limit bytes from r; reading more fails with
// body_too_large (wire) or decoded_too_large. The first failure sticks
// (Err), so a decoder can tell a limit or a failing client from a corrupt
// compressed stream whatever the decompressor makes of the error it was
// handed.
type LimitReader struct {
	r           io.Reader
	limit, left int64
	// wire marks the reader of the request body itself: its read errors are
	// the client's connection failing, not the body's content.
	wire bool
	err  *Error
}

// NewLimitReader returns a LimitReader of r: of the request body itself
// when wire is set (its read errors are the client's: request_timeout,
// malformed_body), else of its decompressed bytes.
func NewLimitReader(r io.Reader, limit int64, wire bool) LimitReader {
	return LimitReader{r: r, limit: limit, left: limit, wire: wire}
}

// Err is the failure that stuck: the limit passed, or (wire) the client's
// read error; nil if none.
func (l *LimitReader) Err() *Error { return l.err }

func (l *LimitReader) over() *Error {
	if l.wire {
		return BodyTooLarge(l.limit)
	}
	return DecodedTooLarge(l.limit)
}

func (l *LimitReader) Read(b []byte) (int, error) {
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
		l.err = clientReadError(err, l.over)
	default:
		return n, err // a decompressor's error: the decoder names the encoding
	}
	return 0, l.err
}

// BodyTooLarge refuses a body over limit bytes on the wire, whether its
// Content-Length says so or reading it finds out.
func BodyTooLarge(limit int64) *Error {
	return Errorf(apierror.BodyTooLarge, "request body exceeds the limit of %d bytes on the wire", limit)
}

// DecodedTooLarge refuses a body over limit bytes after decompression.
func DecodedTooLarge(limit int64) *Error {
	return Errorf(apierror.DecodedTooLarge, "request body exceeds the limit of %d bytes after decompression", limit)
}

// clientReadError maps a failure to read the request body from the client.
func clientReadError(err error, tooLarge func() *Error) *Error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return Errorf(apierror.RequestTimeout, "the request body was not received in time")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(apierror.MalformedBody, "the request body ended before its announced length")
	}
	return Errorf(apierror.MalformedBody, "reading the request body: %v", err)
}
