package ingest

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-ingest/sluice/gateway/internal/auth"
	"github.com/sluice-ingest/sluice/gateway/internal/decode"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/ledger"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// Admitter decides whether an authenticated, decoded request may go on
// (rate limits). events is the request's event count, so a policy may weigh
// a request by its events; a policy that counts requests ignores it. The
// handler calls it once per request, after decoding and before publishing,
// or, with Config.AdmitBeforeBody, before reading the body (events is 0).
type Admitter interface {
	Admit(ctx context.Context, key auth.Key, events int) (Admission, error)
}

// Admission is an Admitter's answer.
type Admission struct {
	Allowed    bool
	RetryAfter time.Duration
	// Header holds headers for the answer to this request, such as
	// RateLimit-Policy and RateLimit.
	Header http.Header
}

// Defaults of Config.
const (
	DefaultMaxInflight    = 256
	DefaultPublishTimeout = 2 * time.Second
)

// Config wires the handler.
type Config struct {
	Auth      *auth.Authenticator
	Admit     Admitter // nil admits everything
	Publisher Publisher
	Limits    decode.Limits
	// AdmitBeforeBody asks Admit before the body is read, with events 0, so
	// that a refused request costs no decoding. Leave it false for an
	// Admitter that weighs requests by their event count.
	AdmitBeforeBody bool
	// PublishTimeout is the longest wait for the PubAck before answering 503.
	PublishTimeout time.Duration
	// MaxInflight bounds the requests being decoded or published at once,
	// and so the memory they hold (each at most Limits.MaxDecodedBytes);
	// one more is answered 503 overloaded at once.
	MaxInflight int
	// Connected reports whether the broker connection is up; while it is
	// not, requests are answered 503 without reading their body. nil means
	// always up.
	Connected func() bool
	// Lag, when set, refuses requests with 503 while the workers' backlog
	// is over its limit.
	Lag     *LagWatcher
	Metrics *Metrics
	Log     *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// Receipts answers GET /v1/receipts/{batch_id}; Tally counts the events
	// accepted (receipts.go). nil: no receipts, nothing counted.
	Receipts ReceiptReader
	Tally    Tally
}

// Handler serves the ingest API.
type Handler struct {
	cfg   Config
	dec   *decode.Decoder
	slots chan struct{} // one token per request being decoded or published
	mux   *http.ServeMux
	// pubOpts are the options of every publish (see publish).
	pubOpts []jetstream.PublishOpt
}

// NewHandler returns the ingest API handler.
func NewHandler(cfg Config) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	h := &Handler{
		cfg:     cfg,
		dec:     decode.NewDecoder(cfg.Limits),
		slots:   make(chan struct{}, cfg.MaxInflight),
		mux:     http.NewServeMux(),
		pubOpts: []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)},
	}
	h.mux.HandleFunc("/v1/events", h.events)
	h.mux.HandleFunc("/v1/receipts/{batch_id}", h.receipt)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, &apiError{http.StatusNotFound, "not_found", "no such endpoint: " + r.URL.Path + "; POST /v1/events", 0})
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

// maxIdempotencyKey is the longest Idempotency-Key accepted.
const maxIdempotencyKey = 256

// events runs authenticate -> admit the work (broker up, backlog, a free
// slot) -> decode -> rate limit -> publish -> 202 (rate limit before decode
// with AdmitBeforeBody). Everything cheap that can refuse a request comes
// before its body is read.
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
	idemKey := r.Header.Get("Idempotency-Key")
	if len(idemKey) > maxIdempotencyKey {
		h.fail(w, r, &apiError{http.StatusBadRequest, "invalid_idempotency_key", "Idempotency-Key is longer than " + strconv.Itoa(maxIdempotencyKey) + " bytes", 0})
		return
	}
	lim := h.dec.Limits()
	if r.ContentLength > lim.MaxBodyBytes {
		h.fail(w, r, &apiError{http.StatusRequestEntityTooLarge, "body_too_large",
			"Content-Length " + strconv.FormatInt(r.ContentLength, 10) + " exceeds the limit of " + strconv.FormatInt(lim.MaxBodyBytes, 10) + " bytes on the wire", 0})
		return
	}
	if err := h.admitWork(); err != nil {
		h.fail(w, r, err)
		return
	}
	defer h.release()
	if h.cfg.AdmitBeforeBody {
		if err := h.rateLimit(w, r, key, 0); err != nil {
			h.fail(w, r, err)
			return
		}
	}

	batch, err := h.dec.Decode(http.MaxBytesReader(w, r.Body, lim.MaxBodyBytes), r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer batch.Release()

	if !h.cfg.AdmitBeforeBody {
		if err := h.rateLimit(w, r, key, batch.Events); err != nil {
			h.fail(w, r, err)
			return
		}
	}

	meta := envelope.Meta{Tenant: key.Tenant, ReceivedAt: start.UTC(), EventCount: batch.Events}
	if idemKey != "" {
		meta.BatchID = envelope.BatchIDFor(key.Tenant, idemKey)
		meta.Idempotent = true
	} else {
		meta.BatchID = envelope.NewBatchID()
	}
	msg := nats.NewMsg(stream.EventsSubject(key.Tenant))
	meta.SetHeaders(msg.Header)
	msg.Data = batch.Body
	ack, err := h.publish(r.Context(), msg)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if h.cfg.Tally != nil && !ack.Duplicate { // a duplicate was counted when first stored
		h.cfg.Tally.Add(ledger.Accepted, key.Tenant, meta.ReceivedAt, batch.Events)
	}
	h.cfg.Metrics.eventsAccepted.Add(float64(batch.Events))
	h.cfg.Metrics.accepted.Inc()
	h.cfg.Metrics.requestSeconds.Observe(h.cfg.Now().Sub(start).Seconds())
	writeAccepted(w, batch.Events, meta.BatchID, ack.Duplicate)
}

// rateLimit asks the Admitter, if any, whether the tenant may send this
// request now; its headers go on the answer either way.
func (h *Handler) rateLimit(w http.ResponseWriter, r *http.Request, key auth.Key, events int) error {
	if h.cfg.Admit == nil {
		return nil
	}
	adm, err := h.cfg.Admit.Admit(r.Context(), key, events)
	for k, v := range adm.Header {
		w.Header()[k] = v
	}
	switch {
	case err != nil:
		return &apiError{http.StatusServiceUnavailable, "limiter_unavailable", "rate limiter unavailable; retry later", time.Second}
	case !adm.Allowed:
		return &apiError{http.StatusTooManyRequests, "rate_limited", "tenant rate limit exceeded", adm.RetryAfter}
	}
	return nil
}

// admitWork takes a slot for a request about to be read and published, or
// says why there is no room: the broker is down, the workers are too far
// behind, or MaxInflight requests are already in flight.
func (h *Handler) admitWork() error {
	if h.cfg.Connected != nil && !h.cfg.Connected() {
		return errUnavailable
	}
	if h.cfg.Lag != nil {
		if lag, over := h.cfg.Lag.Over(); over {
			return &apiError{http.StatusServiceUnavailable, "backlogged",
				"the workers are " + strconv.FormatInt(lag, 10) + " messages behind; retry later", 5 * time.Second}
		}
	}
	select {
	case h.slots <- struct{}{}:
		h.cfg.Metrics.inflightRequests.Inc()
		return nil
	default:
		return errOverloaded
	}
}

func (h *Handler) release() {
	<-h.slots
	h.cfg.Metrics.inflightRequests.Dec()
}

// writeAccepted writes {"accepted":N,"batch_id":"...","duplicate":true}; the
// batch id is lowercase base32, so it needs no escaping.
func writeAccepted(w http.ResponseWriter, events int, batchID string, duplicate bool) {
	var buf [128]byte
	b := append(buf[:0], `{"accepted":`...)
	b = strconv.AppendInt(b, int64(events), 10)
	b = append(b, `,"batch_id":"`...)
	b = append(b, batchID...)
	b = append(b, '"')
	if duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	b = append(b, "}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(b) // an error here means the client went away
}
