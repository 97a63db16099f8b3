package api

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-ingest/sluice/client/apierror"
	"github.com/sluice-ingest/sluice/gateway/internal/auth"
	"github.com/sluice-ingest/sluice/gateway/internal/body"
	"github.com/sluice-ingest/sluice/gateway/internal/decode"
	"github.com/sluice-ingest/sluice/gateway/internal/otlp"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/ledger"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// RateLimiter decides whether an authenticated, decoded request may go on
// (rate limits). events is the request's event count, so a policy may weigh
// a request by its events; a policy that counts requests ignores it. The
// handler calls it once per request, after decoding and before publishing,
// or, with Config.RateLimitBeforeBody, before reading the body (events is 0).
type RateLimiter interface {
	Decide(ctx context.Context, key auth.Key, events int) (Decision, error)
}

// Decision is an RateLimiter's answer.
type Decision struct {
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
	RateLimit RateLimiter // nil admits everything
	Publisher Publisher
	Limits    body.Limits
	// RateLimitBeforeBody asks RateLimit before the body is read, with events 0, so
	// that a refused request costs no decoding. Leave it false for an
	// RateLimiter that weighs requests by their event count.
	RateLimitBeforeBody bool
	// PublishTimeout is the longest wait for the PubAck before answering 503;
	// the Publisher times the wait out (see Publisher).
	PublishTimeout time.Duration
	// MaxInflight bounds the requests being decoded or published at once;
	// one more is answered 503 overloaded at once. The bytes they hold are
	// bounded by Limits.MaxInflightBytes.
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

	// Coalesce publishes the concurrent requests of a tenant without an
	// Idempotency-Key together, as one message (coalesce.go).
	Coalesce bool
}

// Handler serves the ingest API.
type Handler struct {
	cfg Config
	// budget holds the limits in force and the bytes in flight that both
	// decoders (and the coalesced copies) charge.
	budget  *body.Budget
	dec     *decode.Decoder
	logsDec *otlp.Decoder
	slots   chan struct{} // one token per request being decoded or published
	mux     *http.ServeMux
	// pubOpts are the options of every publish (see publish).
	pubOpts []jetstream.PublishOpt
	// coalesce is nil unless Config.Coalesce.
	coalesce *coalescer
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
	budget := body.NewBudget(cfg.Limits)
	h := &Handler{
		cfg:     cfg,
		budget:  budget,
		dec:     decode.NewDecoder(budget),
		logsDec: otlp.NewDecoder(budget),
		slots:   make(chan struct{}, cfg.MaxInflight),
		mux:     http.NewServeMux(),
		pubOpts: []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)},
	}
	if cfg.Coalesce {
		// Until the broker's max_payload is known (CapDecodedBytes), its
		// default bounds a message.
		h.coalesce = newCoalescer(h, min(budget.MaxDecodedBytes()+headerRoom, defaultMaxPayload))
	}
	h.mux.HandleFunc("/v1/events", h.events)
	h.mux.HandleFunc("/v1/logs", h.logs)
	h.mux.HandleFunc("/v1/receipts/{batch_id}", h.receipt)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, &body.Error{Code: apierror.NotFound, Message: "no such endpoint: " + r.URL.Path + "; POST /v1/events or /v1/logs"})
	})
	return h
}

// headerRoom is what a message's subject and headers take of the broker's
// max_payload, with room to spare: Nats-Msg-Id and the Sluice-* headers of
// envelope.Meta are under 300 bytes. (A coalesced message's Sluice-Requests
// is counted apart, envelope.RequestHeaderBytes per request.)
const headerRoom = 1 << 10

// defaultMaxPayload is nats-server's default max_payload.
const defaultMaxPayload = 1 << 20

// CapDecodedBytes keeps the decoded limit under maxPayload, the largest
// message the broker takes, less room for the headers, and returns the
// limit in force. A coalesced message is bounded by maxPayload too.
func (h *Handler) CapDecodedBytes(maxPayload int64) int64 {
	h.budget.CapDecodedBytes(maxPayload - headerRoom)
	if h.coalesce != nil {
		h.coalesce.setMaxPayload(maxPayload)
	}
	return h.budget.MaxDecodedBytes()
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

// maxIdempotencyKey is the longest Idempotency-Key accepted.
const maxIdempotencyKey = 256

// events runs authenticate -> admit the work (broker up, backlog, a free
// slot) -> decode -> rate limit -> publish -> 202 (rate limit before decode
// with RateLimitBeforeBody). Everything cheap that can refuse a request comes
// before its body is read.
func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	in, err := h.begin(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer h.release()

	lim := h.budget.Limits()
	batch, err := h.dec.Decode(http.MaxBytesReader(w, r.Body, lim.MaxBodyBytes), r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer batch.Release()

	meta, ack, err := h.commit(w, r, in, batch.Body, batch.Events)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.cfg.Metrics.accepted.Inc()
	writeAccepted(w, batch.Events, meta.BatchID, ack.Duplicate)
}

// intake is a request that passed the checks made before its body is read.
type intake struct {
	// start is when its handling began, for the request duration; its
	// events are stamped later (commit).
	start   time.Time
	key     auth.Key
	idemKey string
}

// begin authenticates r and sheds what cannot be served, rate limiting it too with
// RateLimitBeforeBody: every refusal that costs no reading of the body. When
// it returns no error, the caller holds a slot and must call h.release.
func (h *Handler) begin(w http.ResponseWriter, r *http.Request) (intake, error) {
	in := intake{start: h.cfg.Now()}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return in, &body.Error{Code: apierror.MethodNotAllowed, Message: r.Method + " is not allowed; use POST"}
	}
	var err error
	in.key, err = h.cfg.Auth.Authenticate(r)
	if err != nil {
		return in, &body.Error{Code: apierror.Unauthorized, Message: err.Error()}
	}
	in.idemKey = r.Header.Get("Idempotency-Key")
	if len(in.idemKey) > maxIdempotencyKey {
		return in, &body.Error{Code: apierror.InvalidIdempotencyKey, Message: "Idempotency-Key is longer than " + strconv.Itoa(maxIdempotencyKey) + " bytes"}
	}
	lim := h.budget.Limits()
	if r.ContentLength > lim.MaxBodyBytes {
		return in, body.BodyTooLarge(lim.MaxBodyBytes)
	}
	if err := h.shed(); err != nil {
		return in, err
	}
	if h.cfg.RateLimitBeforeBody {
		if err := h.rateLimit(w, r, in.key, 0); err != nil {
			h.release()
			return in, err
		}
	}
	return in, nil
}

// commit rate limits a decoded request by its event count (unless that
// was done before its body was read), publishes its NDJSON body as one
// message and waits for the PubAck.
func (h *Handler) commit(w http.ResponseWriter, r *http.Request, in intake, body []byte, events int) (envelope.Meta, *jetstream.PubAck, error) {
	if !h.cfg.RateLimitBeforeBody {
		if err := h.rateLimit(w, r, in.key, events); err != nil {
			return envelope.Meta{}, nil, err
		}
	}
	// ReceivedAt is stamped here, the body read and decoded and the request
	// admitted, right before the publish (or the tenant's coalescing group,
	// split by this hour): a slow body never dates its events early, and the
	// delay from stamp to store that SLUICE_MANIFEST_GRACE allows for
	// (worker/internal/manifest) is the coalescing wait and the publish alone.
	meta := envelope.Meta{Tenant: in.key.Tenant, ReceivedAt: h.cfg.Now().UTC(), EventCount: events}
	subject := stream.EventsSubject(in.key.Tenant)
	var (
		ack *jetstream.PubAck
		err error
	)
	switch {
	case in.idemKey != "":
		// Alone: JetStream de-duplicates a retry by its message's id.
		meta.BatchID = idempotentBatchID(in.key.Tenant, in.idemKey, body)
		meta.Idempotent = true
		ack, err = h.publishAlone(r.Context(), subject, meta, body)
	case h.coalesce != nil:
		meta, ack, err = h.coalesce.publish(r.Context(), subject, meta, body)
	default:
		meta.BatchID = envelope.NewBatchID()
		ack, err = h.publishAlone(r.Context(), subject, meta, body)
	}
	if err != nil {
		return meta, nil, err
	}
	if h.cfg.Tally != nil && !ack.Duplicate { // a duplicate was counted when first stored
		h.cfg.Tally.Add(ledger.Accepted, in.key.Tenant, meta.ReceivedAt, events)
	}
	h.cfg.Metrics.eventsAccepted.Add(float64(events))
	h.cfg.Metrics.requestSeconds.Observe(h.cfg.Now().Sub(in.start).Seconds())
	return meta, ack, nil
}

// rateLimit asks the RateLimiter, if any, whether the tenant may send this
// request now; its headers go on the answer either way.
func (h *Handler) rateLimit(w http.ResponseWriter, r *http.Request, key auth.Key, events int) error {
	if h.cfg.RateLimit == nil {
		return nil
	}
	adm, err := h.cfg.RateLimit.Decide(r.Context(), key, events)
	for k, v := range adm.Header {
		w.Header()[k] = v
	}
	switch {
	case err != nil:
		return &body.Error{Code: apierror.LimiterUnavailable, Message: "rate limiter unavailable; retry later", RetryAfter: time.Second}
	case !adm.Allowed:
		return &body.Error{Code: apierror.RateLimited, Message: "tenant rate limit exceeded", RetryAfter: adm.RetryAfter}
	}
	return nil
}

// shed takes a slot for a request about to be read and published, or
// says why there is no room: the broker is down, the workers are too far
// behind, or MaxInflight requests are already in flight.
func (h *Handler) shed() error {
	if h.cfg.Connected != nil && !h.cfg.Connected() {
		return errUnavailable
	}
	if h.cfg.Lag != nil {
		if lag, over := h.cfg.Lag.Over(); over {
			return &body.Error{Code: apierror.Backlogged, Message: "the workers are " + strconv.FormatInt(lag, 10) + " messages behind; retry later", RetryAfter: 5 * time.Second}
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
