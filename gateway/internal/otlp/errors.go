package otlp

import (
	"github.com/sluice-ingest/sluice/client/apierror"
	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

// malformed is a body that does not decode as an ExportLogsServiceRequest.
func malformed(format string, args ...any) *body.Error {
	return body.Errorf(apierror.MalformedBody, format, args...)
}

// recordError refuses one log record (it counts in the partial success)
// rather than the request.
type recordError struct{ reason string }

func (e *recordError) Error() string { return e.reason }
