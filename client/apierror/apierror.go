package apierror

import "net/http"

// Code is the "error" field of a refusal: {"error": Code, "message": "..."}.
type Code string

// The codes, in the order of the catalogue.
const (
	MalformedBody         Code = "malformed_body"
	InvalidEvent          Code = "invalid_event"
	InvalidBody           Code = "invalid_body"
	EmptyBody             Code = "empty_body"
	NoEvents              Code = "no_events"
	InvalidIdempotencyKey Code = "invalid_idempotency_key"
	Unauthorized          Code = "unauthorized"
	NotFound              Code = "not_found"
	MethodNotAllowed      Code = "method_not_allowed"
	RequestTimeout        Code = "request_timeout"
	BodyTooLarge          Code = "body_too_large"
	DecodedTooLarge       Code = "decoded_too_large"
	TooManyEvents         Code = "too_many_events"
	TooDeep               Code = "too_deep"
	UnsupportedMediaType  Code = "unsupported_media_type"
	UnsupportedEncoding   Code = "unsupported_encoding"
	RateLimited           Code = "rate_limited"
	Overloaded            Code = "overloaded"
	Unavailable           Code = "unavailable"
	StreamFull            Code = "stream_full"
	Backlogged            Code = "backlogged"
	LimiterUnavailable    Code = "limiter_unavailable"
	Internal              Code = "internal"
)

// Entry is one code of the catalogue and the status it is answered with.
type Entry struct {
	Code   Code
	Status int
}

// catalogue is every code the gateway answers with. A code is answered
// with its status and no other.
var catalogue = [...]Entry{
	{MalformedBody, http.StatusBadRequest},
	{InvalidEvent, http.StatusBadRequest},
	{InvalidBody, http.StatusBadRequest},
	{EmptyBody, http.StatusBadRequest},
	{NoEvents, http.StatusBadRequest},
	{InvalidIdempotencyKey, http.StatusBadRequest},
	{Unauthorized, http.StatusUnauthorized},
	{NotFound, http.StatusNotFound},
	{MethodNotAllowed, http.StatusMethodNotAllowed},
	{RequestTimeout, http.StatusRequestTimeout},
	{BodyTooLarge, http.StatusRequestEntityTooLarge},
	{DecodedTooLarge, http.StatusRequestEntityTooLarge},
	{TooManyEvents, http.StatusRequestEntityTooLarge},
	{TooDeep, http.StatusRequestEntityTooLarge},
	{UnsupportedMediaType, http.StatusUnsupportedMediaType},
	{UnsupportedEncoding, http.StatusUnsupportedMediaType},
	{RateLimited, http.StatusTooManyRequests},
	{Overloaded, http.StatusServiceUnavailable},
	{Unavailable, http.StatusServiceUnavailable},
	{StreamFull, http.StatusServiceUnavailable},
	{Backlogged, http.StatusServiceUnavailable},
	{LimiterUnavailable, http.StatusServiceUnavailable},
	{Internal, http.StatusInternalServerError},
}

// Catalogue returns every code with its status, in a new slice.
func Catalogue() []Entry { return append([]Entry(nil), catalogue[:]...) }

// Status is the HTTP status c is answered with; 0 for a code that is not in
// the catalogue.
func (c Code) Status() int {
	for _, e := range catalogue {
		if e.Code == c {
			return e.Status
		}
	}
	return 0
}

// Known reports whether c is in the catalogue.
func (c Code) Known() bool { return c.Status() != 0 }

// Temporary reports whether a request refused with c can succeed as it is
// when sent again later: a code answered 408, 429 or 5xx.
func (c Code) Temporary() bool {
	s := c.Status()
	return s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500
}
