package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/gateway/internal/decode"
)

// apiError is a refusal with its status, code and message.
type apiError struct {
	status     int
	code       string
	message    string
	retryAfter time.Duration // > 0 sets Retry-After
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// The refusals of work the gateway has no room for. Each carries
// Retry-After, because the same request can succeed later.
var (
	errUnavailable = &apiError{http.StatusServiceUnavailable, "unavailable", "the event broker is unavailable; retry later", time.Second}
	errOverloaded  = &apiError{http.StatusServiceUnavailable, "overloaded", "the gateway has too many requests in flight; retry later", time.Second}
	errStreamFull  = &apiError{http.StatusServiceUnavailable, "stream_full", "the stream is full; retry later", 5 * time.Second}
)

// toAPIError is the one place where errors become status codes. Client
// input is refused with a 4xx (*decode.Error, *apiError); a failed publish
// is a 503 (or 413 when the broker can never take the message). Anything
// else is the gateway's own fault: 500.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, decode.ErrBusy) {
		return &apiError{http.StatusServiceUnavailable, decode.ErrBusy.Code, decode.ErrBusy.Message, time.Second}
	}
	var de *decode.Error
	if errors.As(err, &de) {
		var retry time.Duration
		if de.Status == http.StatusServiceUnavailable { // decode.ErrBusy
			retry = time.Second
		}
		return &apiError{de.Status, de.Code, de.Message, retry}
	}
	var be *brokerError
	if errors.As(err, &be) {
		return publishError(be.err)
	}
	return &apiError{http.StatusInternalServerError, "internal", "internal error", 0}
}

// publishError maps a failed publish to the contract.
func publishError(err error) *apiError {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch {
		case api.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
			return &apiError{http.StatusRequestEntityTooLarge, "decoded_too_large", "the events exceed the stream's maximum message size", 0}
		case api.ErrorCode == jsErrCodeInsufficientResources,
			strings.Contains(api.Description, "maximum bytes exceeded"),
			strings.Contains(api.Description, "maximum messages exceeded"):
			return errStreamFull
		}
	}
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return &apiError{http.StatusRequestEntityTooLarge, "decoded_too_large", "the events exceed the broker's maximum message size", 0}
	case errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return errOverloaded
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer.
		return &apiError{http.StatusServiceUnavailable, "unavailable", "request cancelled before the PubAck", 0}
	}
	return errUnavailable
}

// jsErrCodeInsufficientResources is JetStream's "insufficient resources":
// the server or account has no storage left.
const jsErrCodeInsufficientResources jetstream.ErrorCode = 10023

// fail answers a refused request. Refusals are routine (clients get them by
// the thousand under overload), so only a 500 is logged above debug.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	ae := h.refusal(w, r, err)
	writeJSON(w, ae.status, errorBody{ae.code, ae.message})
}

// refusal maps err to its answer, sets its Retry-After, and logs and counts
// it; the caller writes the body.
func (h *Handler) refusal(w http.ResponseWriter, r *http.Request, err error) *apiError {
	ae := toAPIError(err)
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, (ae.retryAfter+time.Second-1)/time.Second))))
	}
	level := h.cfg.Log.Debug
	if ae.status >= http.StatusInternalServerError && ae.status != http.StatusServiceUnavailable {
		level = h.cfg.Log.Error
	}
	level("request refused", "path", r.URL.Path, "status", ae.status, "code", ae.code, "err", err)
	h.cfg.Metrics.requests.WithLabelValues(strconv.Itoa(ae.status)).Inc()
	return ae
}

type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // an error here means the client went away
}
