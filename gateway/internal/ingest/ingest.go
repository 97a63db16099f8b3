package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-ingest/sluice/gateway/internal/auth"
	"github.com/sluice-ingest/sluice/gateway/internal/decode"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// Publisher is the one JetStream call the handler makes.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Admitter decides whether an authenticated request may go on (rate limits).
type Admitter interface {
	Admit(ctx context.Context, key auth.Key) (Admission, error)
}

// Admission is an Admitter's answer.
type Admission struct {
	Allowed    bool
	RetryAfter time.Duration
	// Header holds headers for every answer on this route, such as
	// RateLimit-Policy and RateLimit.
	Header http.Header
}

// Config wires the handler.
type Config struct {
	Auth           *auth.Authenticator
	Admit          Admitter // nil admits everything
	Publisher      Publisher
	Limits         decode.Limits
	PublishTimeout time.Duration
	Metrics        *Metrics
	Log            *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Handler serves the ingest API.
type Handler struct {
	cfg Config
	dec *decode.Decoder
	mux *http.ServeMux
}

// NewHandler returns the ingest API handler.
func NewHandler(cfg Config) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	h := &Handler{cfg: cfg, dec: decode.NewDecoder(cfg.Limits), mux: http.NewServeMux()}
	h.mux.HandleFunc("/v1/events", h.events)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, &apiError{http.StatusNotFound, "not_found", "no such endpoint: " + r.URL.Path + "; POST /v1/events", 0})
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

type accepted struct {
	Accepted  int    `json:"accepted"`
	BatchID   string `json:"batch_id"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	start := h.cfg.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, r, &apiError{http.StatusMethodNotAllowed, "method_not_allowed", r.Method + " is not allowed; use POST", 0})
		return
	}
	key, err := h.cfg.Auth.Authenticate(r)
	if err != nil {
		h.fail(w, r, &apiError{http.StatusUnauthorized, "unauthorized", err.Error(), 0})
		return
	}
	if h.cfg.Admit != nil {
		adm, err := h.cfg.Admit.Admit(r.Context(), key)
		for k, v := range adm.Header {
			w.Header()[k] = v
		}
		if err != nil {
			h.fail(w, r, &apiError{http.StatusServiceUnavailable, "limiter_unavailable", "rate limiter unavailable; retry later", time.Second})
			return
		}
		if !adm.Allowed {
			h.fail(w, r, &apiError{http.StatusTooManyRequests, "rate_limited", "tenant rate limit exceeded", adm.RetryAfter})
			return
		}
	}
	body := http.MaxBytesReader(w, r.Body, h.cfg.Limits.MaxBodyBytes)
	batch, err := h.dec.Decode(body, r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer batch.Release()
	meta := envelope.Meta{Tenant: key.Tenant, ReceivedAt: start.UTC(), EventCount: batch.Events}
	if ik := r.Header.Get("Idempotency-Key"); ik != "" {
		if len(ik) > 256 {
			h.fail(w, r, &apiError{http.StatusBadRequest, "invalid_idempotency_key", "Idempotency-Key is longer than 256 bytes", 0})
			return
		}
		meta.BatchID = envelope.BatchIDFor(key.Tenant, ik)
	} else {
		meta.BatchID = envelope.NewBatchID()
	}
	msg := nats.NewMsg(stream.EventsSubject(key.Tenant))
	meta.SetHeaders(msg.Header)
	msg.Data = batch.Body

	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.PublishTimeout)
	defer cancel()
	pubStart := time.Now()
	ack, err := h.cfg.Publisher.PublishMsg(ctx, msg)
	h.cfg.Metrics.publishSeconds.Observe(time.Since(pubStart).Seconds())
	if err != nil {
		h.fail(w, r, publishError(err))
		return
	}
	h.cfg.Metrics.eventsAccepted.Add(float64(batch.Events))
	h.cfg.Metrics.requests.WithLabelValues("202").Inc()
	h.cfg.Metrics.requestSeconds.Observe(time.Since(start).Seconds())
	writeJSON(w, http.StatusAccepted, accepted{Accepted: batch.Events, BatchID: meta.BatchID, Duplicate: ack.Duplicate})
}

// apiError is a refusal with its status, code and message.
type apiError struct {
	status     int
	code       string
	message    string
	retryAfter time.Duration // > 0 sets Retry-After
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// publishError maps a failed publish to the contract: every one is a 503
// with Retry-After, because the request was fine and a retry can succeed.
func publishError(err error) *apiError {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		if strings.Contains(apiErr.Description, "maximum bytes exceeded") ||
			strings.Contains(apiErr.Description, "maximum messages exceeded") ||
			strings.Contains(apiErr.Description, "resource limits exceeded") {
			return &apiError{http.StatusServiceUnavailable, "stream_full", "the stream is full; retry later", 5 * time.Second}
		}
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		return &apiError{http.StatusRequestEntityTooLarge, "body_too_large", "decoded events exceed the broker's maximum message size", 0}
	}
	return &apiError{http.StatusServiceUnavailable, "unavailable", "the event broker did not acknowledge the write; retry later", time.Second}
}

// toAPIError is the one place where errors become status codes. Anything it
// does not recognise is the server's fault (500), never the client's input.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var de *decode.Error
	if errors.As(err, &de) {
		return &apiError{de.Status, de.Code, de.Message, 0}
	}
	return &apiError{http.StatusInternalServerError, "internal", "internal error", 0}
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	ae := toAPIError(err)
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, (ae.retryAfter+time.Second-1)/time.Second))))
	}
	if ae.status >= 500 {
		h.cfg.Log.Warn("request failed", "path", r.URL.Path, "status", ae.status, "code", ae.code, "err", err)
	}
	writeJSON(w, ae.status, map[string]string{"error": ae.code, "message": ae.message})
	h.cfg.Metrics.requests.WithLabelValues(strconv.Itoa(ae.status)).Inc()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // an error here means the client went away
}
