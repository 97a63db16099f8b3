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

	"github.com/sluice-ingest/sluice/client/apierror"
	"github.com/sluice-ingest/sluice/gateway/internal/decode"
)

// apiError is a refusal with its status (the catalogue's for its code),
// code and message.
type apiError struct {
	status     int
	code       apierror.Code
	message    string
	retryAfter time.Duration // > 0 sets Retry-After
}

func newAPIError(code apierror.Code, message string, retryAfter time.Duration) *apiError {
	return &apiError{code.Status(), code, message, retryAfter}
}

func (e *apiError) Error() string { return string(e.code) + ": " + e.message }

// The refusals of work the gateway has no room for. Each carries
// Retry-After, because the same request can succeed later.
var (
	errUnavailable = newAPIError(apierror.Unavailable, "the event broker is unavailable; retry later", time.Second)
	errOverloaded  = newAPIError(apierror.Overloaded, "the gateway has too many requests in flight; retry later", time.Second)
	errStreamFull  = newAPIError(apierror.StreamFull, "the stream is full; retry later", 5*time.Second)
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
		return newAPIError(decode.ErrBusy.Code, decode.ErrBusy.Message, time.Second)
	}
	var de *decode.Error
	if errors.As(err, &de) {
		var retry time.Duration
		if de.Status == http.StatusServiceUnavailable { // decode.ErrBusy
			retry = time.Second
		}
		return newAPIError(de.Code, de.Message, retry)
	}
	var be *brokerError
	if errors.As(err, &be) {
		return publishError(be.err)
	}
	return newAPIError(apierror.Internal, "internal error", 0)
}

// publishError maps a failed publish to the contract.
func publishError(err error) *apiError {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch {
		case api.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
			return newAPIError(apierror.DecodedTooLarge, "the events exceed the stream's maximum message size", 0)
		case api.ErrorCode == jsErrCodeInsufficientResources,
			strings.Contains(api.Description, "maximum bytes exceeded"),
			strings.Contains(api.Description, "maximum messages exceeded"):
			return errStreamFull
		}
	}
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return newAPIError(apierror.DecodedTooLarge, "the events exceed the broker's maximum message size", 0)
	case errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return errOverloaded
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer.
		return newAPIError(apierror.Unavailable, "request cancelled before the PubAck", 0)
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
	code := strconv.Itoa(ae.status)
	if r.Context().Err() != nil {
		// The client went away (closed its connection): nobody reads this
		// answer, and a 503 would be counted as the gateway's refusal.
		code = clientClosed
	}
	h.cfg.Metrics.requests.WithLabelValues(code).Inc()
	return ae
}

// clientClosed is the requests_total code of a request whose client went
// away before its answer (nginx's 499, "client closed request").
const clientClosed = "499"

type errorBody struct {
	Error   apierror.Code `json:"error"`
	Message string        `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // an error here means the client went away
}
