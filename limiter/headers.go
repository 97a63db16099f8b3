package limiter

import (
	"math"
	"strconv"
	"strings"
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
//
// RateLimit-Policy: q is the quota and w the window in seconds. Windows are
// whole seconds in the draft, so a sub-second period is scaled up to one
// second (10/100ms is q=100;w=1). For GCRA the quota is the burst when it is
// larger than the rate (what a client can send at once), else the rate.
//
// RateLimit: r is the remaining quota and t the seconds until it is
// available: ResetAfter when allowed, RetryAfter when denied (a client
// waiting t seconds can send again).
func Headers(name string, res Result) HeaderValues {
	l := res.Limit.normalize()
	q, w := policyWindow(l)
	id := sfString(name)
	var h HeaderValues
	h.Policy = id + ";q=" + strconv.FormatInt(q, 10) + ";w=" + strconv.FormatInt(w, 10)
	t := res.ResetAfter
	if !res.Allowed {
		t = res.RetryAfter
		if t < 0 {
			t = l.Period
		}
		h.RetryAfter = strconv.FormatInt(max(ceilSeconds(t), 1), 10)
	}
	h.RateLimit = id + ";r=" + strconv.Itoa(max(res.Remaining, 0)) + ";t=" + strconv.FormatInt(ceilSeconds(t), 10)
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

// sfString writes s as a structured-field string: printable ASCII only,
// with '"' and '\' escaped; other bytes become '?'.
func sfString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			b.WriteByte('?')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
