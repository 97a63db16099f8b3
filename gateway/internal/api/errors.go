package api

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
	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

// The refusals of work the gateway has no room for. Each carries
// Retry-After, because the same request can succeed later.
var (
	errUnavailable = &body.Error{Code: apierror.Unavailable, Message: "the event broker is unavailable; retry later", RetryAfter: time.Second}
	errOverloaded  = &body.Error{Code: apierror.Overloaded, Message: "the gateway has too many requests in flight; retry later", RetryAfter: time.Second}
	errStreamFull  = &body.Error{Code: apierror.StreamFull, Message: "the stream is full; retry later", RetryAfter: 5 * time.Second}
)

// toAPIError is the one place where errors become answers. A refusal is
// a *body.Error already: client input a 4xx, no room for the work a 503
// with Retry-After. A failed publish is a 503 (or 413 when the broker can
// never take the message). Anything else is the gateway's own fault: 500.
func toAPIError(err error) *body.Error {
	var refusal *body.Error
	if errors.As(err, &refusal) {
		return refusal
	}
	var be *brokerError
	if errors.As(err, &be) {
		return publishError(be.err)
	}
	return &body.Error{Code: apierror.Internal, Message: "internal error"}
}

// publishError maps a failed publish to the contract.
func publishError(err error) *body.Error {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch {
		case api.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
			return &body.Error{Code: apierror.DecodedTooLarge, Message: "the events exceed the stream's maximum message size"}
		case api.ErrorCode == jsErrCodeInsufficientResources,
			strings.Contains(api.Description, "maximum bytes exceeded"),
			strings.Contains(api.Description, "maximum messages exceeded"):
			return errStreamFull
		}
	}
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return &body.Error{Code: apierror.DecodedTooLarge, Message: "the events exceed the broker's maximum message size"}
	case errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return errOverloaded
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer.
		return &body.Error{Code: apierror.Unavailable, Message: "request cancelled before the PubAck"}
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
	writeJSON(w, ae.Status(), errorBody{ae.Code, ae.Message})
}

// refusal maps err to its answer, sets its Retry-After, and logs and counts
// it; the caller writes the body.
func (h *Handler) refusal(w http.ResponseWriter, r *http.Request, err error) *body.Error {
	ae := toAPIError(err)
	if ae.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, (ae.RetryAfter+time.Second-1)/time.Second))))
	}
	status := ae.Status()
	level := h.cfg.Log.Debug
	if status >= http.StatusInternalServerError && status != http.StatusServiceUnavailable {
		level = h.cfg.Log.Error
	}
	level("request refused", "path", r.URL.Path, "status", status, "code", ae.Code, "err", err)
	code := strconv.Itoa(status)
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
