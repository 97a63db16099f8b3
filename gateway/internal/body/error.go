package body

import (
	"fmt"
	"time"

	"github.com/sluice-ingest/sluice/client/apierror"
)

// Error is a refusal of a request: it is answered with the status the
// catalogue (client/apierror) has for Code, and Code and Message as the
// body ({"error","message"} on /v1/events, a google.rpc.Status on
// /v1/logs). A RetryAfter above zero sets Retry-After: the same request
// can succeed later.
type Error struct {
	Code       apierror.Code
	Message    string
	RetryAfter time.Duration
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Status is the HTTP status of the refusal: its code's.
func (e *Error) Status() int { return e.Code.Status() }

// Errorf returns a refusal with code and a formatted message.
func Errorf(code apierror.Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrEmpty refuses a body without a single non-blank byte.
var ErrEmpty = &Error{Code: apierror.EmptyBody, Message: "request body is empty"}
