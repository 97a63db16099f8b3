package limiter

import (
	"math"
	"strconv"
	"time"
)

// HeaderValues are the values of the HTTP headers describing a decision,
// following draft-ietf-httpapi-ratelimit-headers (the RateLimit-Policy and
// RateLimit fields, structured-field syntax) and RFC 9110 Retry-After.
// The library writes values, not headers: callers set them on their own
// responses.
type HeaderValues struct {
	// Policy is the RateLimit-Policy value, e.g. `"tenant";q=1000;w=1`.
	Policy string
	// RateLimit is the RateLimit value, e.g. `"tenant";r=998;t=1`.
	RateLimit string
	// RetryAfter is the Retry-After value in whole seconds (rounded up, at
	// least 1) when the request was denied, else "". A request that can
	// never be admitted (cost over the burst) gets the limit's period.
	RetryAfter string
}

// Headers formats res for a policy named name (a short token such as
// "default" or "tenant"; quotes and backslashes are escaped).
// RateLimit-Policy: q is the quota, w the window in whole seconds (10/100ms
// is q=100;w=1; for GCRA the quota is the burst when larger than the rate).
// RateLimit: r is the remaining quota, t the seconds until it is available
// (ResetAfter when allowed, RetryAfter when denied).
func Headers(name string, res Result) HeaderValues {
	l := res.Limit.normalize()
	q, w := policyWindow(l)
	// Both fields start with the quoted name: one buffer on the stack,
	// one allocation per field.
	var buf [128]byte
	id := appendSFString(buf[:0], name)
	var h HeaderValues
	b := append(id, ";q="...)
	b = strconv.AppendInt(b, q, 10)
	b = append(b, ";w="...)
	h.Policy = string(strconv.AppendInt(b, w, 10))
	t := res.ResetAfter
	if !res.Allowed {
		t = res.RetryAfter
		if t < 0 {
			t = l.Period
		}
		h.RetryAfter = strconv.FormatInt(max(ceilSeconds(t), 1), 10)
	}
	b = append(id, ";r="...)
	b = strconv.AppendInt(b, int64(max(res.Remaining, 0)), 10)
	b = append(b, ";t="...)
	h.RateLimit = string(strconv.AppendInt(b, ceilSeconds(t), 10))
	return h
}

func policyWindow(l Limit) (q, w int64) {
	q = int64(l.Rate)
	if l.Algorithm == GCRA && l.Burst > l.Rate {
		q = int64(l.Burst)
	}
	if l.Period <= 0 {
		return q, 1
	}
	if l.Period < time.Second {
		scale := int64(math.Ceil(float64(time.Second) / float64(l.Period)))
		return q * scale, 1
	}
	return q, ceilSeconds(l.Period)
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// appendSFString appends s as a structured-field string: quoted, with
// quotes and backslashes escaped and anything outside printable ASCII
// replaced by '?'.
func appendSFString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c > 0x7e:
			b = append(b, '?')
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
