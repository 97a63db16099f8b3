package otlp

import (
	"fmt"

	"github.com/sluice-ingest/sluice/client/apierror"
	"github.com/sluice-ingest/sluice/gateway/internal/decode"
)

// Error is a refusal of the whole request, the JSON path's: it maps to
// Status (always a 4xx) with Code as the reason and Message saying what was
// wrong and where.
type Error = decode.Error

func errorf(code apierror.Code, format string, args ...any) *Error {
	return &Error{Status: code.Status(), Code: code, Message: fmt.Sprintf(format, args...)}
}

// malformed is a body that does not decode as an ExportLogsServiceRequest.
func malformed(format string, args ...any) *Error {
	return errorf(apierror.MalformedBody, format, args...)
}

// recordError refuses one log record (it counts in the partial success)
// rather than the request.
type recordError struct{ reason string }

func (e *recordError) Error() string { return e.reason }
