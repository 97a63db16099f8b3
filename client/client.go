package client

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/sluice-ingest/sluice/client/apierror"
)

// Result is the gateway's 202 answer.
type Result struct {
	Accepted  int    `json:"accepted"`
	BatchID   string `json:"batch_id"`
	Duplicate bool   `json:"duplicate"`
}

// APIError is a refusal by the gateway. Code is one of the catalogue's
// (package apierror), or CodeUnexpectedResponse.
type APIError struct {
	Status     int
	Code       apierror.Code `json:"error"`
	Message    string        `json:"message"`
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	return fmt.Sprintf("sluice: %d %s: %s", e.Status, e.Code, e.Message)
}

// CodeUnexpectedResponse is the Code of an answer that is not the
// gateway's JSON refusal (a proxy's error page, say); Message holds its body.
const CodeUnexpectedResponse apierror.Code = "unexpected_response"

// Temporary reports whether a retry can succeed: 408 (the body did not
// arrive in time), 429 and 5xx.
func (e *APIError) Temporary() bool {
	return e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// ErrRetryWindow is wrapped by the error of a Send that stopped retrying
// because another attempt could not end inside the duplicate window.
var ErrRetryWindow = errors.New("sluice: no retry left inside the duplicate window")

// DefaultDuplicateWindow is the gateway's default SLUICE_DUPLICATE_WINDOW.
const DefaultDuplicateWindow = 2 * time.Minute

// Client sends events to one gateway. It is safe for concurrent use.
type Client struct {
	url        string
	key        string
	http       *http.Client
	gzip       bool
	retries    int
	maxBackoff time.Duration
	window     time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: 30s timeout).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithGzip compresses request bodies (default on).
func WithGzip(on bool) Option { return func(c *Client) { c.gzip = on } }

// WithRetries sets how many times a temporary failure is retried (default 5).
func WithRetries(n int) Option { return func(c *Client) { c.retries = n } }

// WithMaxBackoff bounds the wait between retries (default 10s).
func WithMaxBackoff(d time.Duration) Option { return func(c *Client) { c.maxBackoff = d } }

// WithDuplicateWindow tells the client the gateway's SLUICE_DUPLICATE_WINDOW
// (default 2m). Every attempt of one Send starts and ends within nine
// tenths of it, counted from the first attempt: the gateway stores a retry
// once only while JetStream still remembers the first copy's id, and the
// last tenth leaves room for a publish the gateway finishes after the
// client gave up on its answer.
func WithDuplicateWindow(d time.Duration) Option { return func(c *Client) { c.window = d } }

// New returns a client for the gateway at baseURL (e.g. http://127.0.0.1:8080)
// sending with apiKey.
func New(baseURL, apiKey string, opts ...Option) *Client {
	c := &Client{
		url:        strings.TrimSuffix(baseURL, "/") + "/v1/events",
		key:        apiKey,
		http:       &http.Client{Timeout: 30 * time.Second},
		gzip:       true,
		retries:    5,
		maxBackoff: 10 * time.Second,
		window:     DefaultDuplicateWindow,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Send posts events (each must marshal to a JSON object) as one request.
// Retries carry the same Idempotency-Key, so the events are stored once
// however often the request is retried: retries stop before the gateway's
// duplicate window ends (see WithDuplicateWindow).
func (c *Client) Send(ctx context.Context, events ...any) (Result, error) {
	body, err := c.encode(events)
	if err != nil {
		return Result{}, err
	}
	return c.SendRaw(ctx, body, "application/json", newKey())
}

// SendRaw posts an encoded JSON body with the given idempotency key, retrying
// temporary failures (APIError.Temporary) and transport errors up to the retry
// count, after Retry-After or a jittered exponential backoff, each wait capped
// by the maximum backoff. Every attempt stays inside the duplicate window
// (WithDuplicateWindow): an error for want of time in it wraps ErrRetryWindow,
// one because ctx ended wraps ctx's error.
func (c *Client) SendRaw(ctx context.Context, body []byte, contentType, idempotencyKey string) (Result, error) {
	deadline := time.Now().Add(c.window - c.window/10)
	actx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		res, err := c.post(actx, body, contentType, idempotencyKey)
		if err == nil {
			return res, nil
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) && !apiErr.Temporary() || attempt >= c.retries || ctx.Err() != nil {
			return Result{}, err
		}
		wait := backoff + rand.N(backoff)
		if apiErr != nil && apiErr.RetryAfter > 0 {
			wait = apiErr.RetryAfter
		}
		wait = min(wait, c.maxBackoff)
		if actx.Err() != nil || time.Until(deadline) <= wait {
			return Result{}, fmt.Errorf("%w (%w of %s)", err, ErrRetryWindow, c.window)
		}
		select {
		case <-ctx.Done():
			return Result{}, fmt.Errorf("%w (gave up waiting to retry: %w)", err, ctx.Err())
		case <-time.After(wait):
		}
		backoff = min(2*backoff, c.maxBackoff)
	}
}

func (c *Client) encode(events []any) ([]byte, error) {
	b, err := json.Marshal(struct {
		Events []any `json:"events"`
	}{events})
	if err != nil {
		return nil, fmt.Errorf("encode events: %w", err)
	}
	return c.compress(b)
}

// gzipWriters keeps compressors between requests: each holds about a
// megabyte of state that would otherwise be allocated per request.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

// compress returns body gzipped when the client compresses, else body.
func (c *Client) compress(body []byte) ([]byte, error) {
	if !c.gzip {
		return body, nil
	}
	var buf bytes.Buffer
	buf.Grow(len(body)/4 + 64)
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	if _, err := zw.Write(body); err != nil {
		return nil, fmt.Errorf("compress events: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress events: %w", err)
	}
	return buf.Bytes(), nil
}

func (c *Client) post(ctx context.Context, body []byte, contentType, idempotencyKey string) (Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+c.key)
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	if c.gzip && len(body) > 2 && body[0] == 0x1f && body[1] == 0x8b {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Result{}, fmt.Errorf("post events: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Result{}, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode == http.StatusAccepted {
		var res Result
		if err := json.Unmarshal(b, &res); err != nil {
			return Result{}, fmt.Errorf("decode 202 body %q: %w", b, err)
		}
		return res, nil
	}
	apiErr := &APIError{Status: resp.StatusCode}
	if err := json.Unmarshal(b, apiErr); err != nil || apiErr.Code == "" {
		apiErr.Code, apiErr.Message = CodeUnexpectedResponse, strings.TrimSpace(string(b))
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		apiErr.RetryAfter = time.Duration(s) * time.Second
	}
	return Result{}, apiErr
}

// newKey returns a random idempotency key.
func newKey() string {
	var b [16]byte
	_, _ = crand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
