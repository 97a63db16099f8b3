package limiter

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Algorithm selects how a Limit is enforced.
type Algorithm uint8

const (
	// GCRA is a token bucket (generic cell rate algorithm): Rate tokens per
	// Period, at most Burst at once. It is the default.
	GCRA Algorithm = iota
	// SlidingWindow weighs the previous fixed window by how much of it still
	// overlaps the sliding window (two counters per key). Burst is ignored:
	// at most Rate per Period.
	SlidingWindow
	// FixedWindow counts per window aligned to the Unix epoch. Burst is
	// ignored: at most Rate per window.
	FixedWindow
	// Concurrency limits leases in flight: at most Rate leases per key, each
	// expiring after Period unless released. Use it with Acquire and Release.
	Concurrency
)

// String returns the algorithm's short name.
func (a Algorithm) String() string {
	switch a {
	case GCRA:
		return "gcra"
	case SlidingWindow:
		return "sliding_window"
	case FixedWindow:
		return "fixed_window"
	case Concurrency:
		return "concurrency"
	}
	return "algorithm(" + strconv.Itoa(int(a)) + ")"
}

// Limit is a rate policy: Rate per Period with Burst, enforced by Algorithm.
// Period may be shorter than a second (resolution is one microsecond).
type Limit struct {
	Algorithm Algorithm
	Rate      int
	Period    time.Duration
	// Burst is the bucket capacity for GCRA; 0 means Rate. The window
	// algorithms ignore it.
	Burst int
}

// PerSecond returns a GCRA limit of rate per second with burst rate.
func PerSecond(rate int) Limit { return Limit{Rate: rate, Period: time.Second, Burst: rate} }

// PerMinute returns a GCRA limit of rate per minute with burst rate.
func PerMinute(rate int) Limit { return Limit{Rate: rate, Period: time.Minute, Burst: rate} }

// PerHour returns a GCRA limit of rate per hour with burst rate.
func PerHour(rate int) Limit { return Limit{Rate: rate, Period: time.Hour, Burst: rate} }

// Concurrent returns a concurrency limit: at most n leases in flight, each
// expiring after ttl unless released first.
func Concurrent(n int, ttl time.Duration) Limit {
	return Limit{Algorithm: Concurrency, Rate: n, Period: ttl, Burst: n}
}

// IsZero reports whether l is the zero Limit.
func (l Limit) IsZero() bool { return l == Limit{} }

// capacity is the most cost one decision can ever be granted.
func (l Limit) capacity() int {
	if l.Algorithm == GCRA && l.Burst > 0 {
		return l.Burst
	}
	return l.Rate
}

// normalize fills defaults: Burst 0 means Rate; window algorithms and
// Concurrency report Burst = Rate.
func (l Limit) normalize() Limit {
	if l.Burst == 0 || l.Algorithm != GCRA {
		l.Burst = l.Rate
	}
	return l
}

// Validate reports why l cannot be enforced, wrapping ErrInvalidLimit.
func (l Limit) Validate() error {
	switch {
	case l.Algorithm > Concurrency:
		return fmt.Errorf("%w: unknown algorithm %d", ErrInvalidLimit, l.Algorithm)
	case l.Rate <= 0:
		return fmt.Errorf("%w: rate %d must be positive", ErrInvalidLimit, l.Rate)
	case l.Period < time.Microsecond:
		return fmt.Errorf("%w: period %s must be at least 1µs", ErrInvalidLimit, l.Period)
	case l.Burst < 0:
		return fmt.Errorf("%w: burst %d must not be negative", ErrInvalidLimit, l.Burst)
	}
	return nil
}

// String formats l in the policy syntax ParsePolicy reads when the period is
// one unit (1000/s,burst=2000); other periods are written with a duration
// (10/100ms). Non-GCRA algorithms add ",alg=<name>".
func (l Limit) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(l.Rate))
	b.WriteByte('/')
	switch l.Period {
	case time.Second:
		b.WriteByte('s')
	case time.Minute:
		b.WriteByte('m')
	case time.Hour:
		b.WriteByte('h')
	default:
		b.WriteString(l.Period.String())
	}
	if l.Algorithm == GCRA && l.Burst != 0 && l.Burst != l.Rate {
		b.WriteString(",burst=")
		b.WriteString(strconv.Itoa(l.Burst))
	}
	if l.Algorithm != GCRA {
		b.WriteString(",alg=")
		b.WriteString(l.Algorithm.String())
	}
	return b.String()
}

// ParsePolicy reads a policy written "<rate>/<unit>[,burst=<n>]" with unit s,
// m or h, e.g. "1000/s,burst=2000" or
// "60000/m". The unit may also be a Go duration ("10/100ms") for sub-second
// periods, and ",alg=sliding_window|fixed_window|gcra" picks the algorithm.
// Without burst, Burst is Rate. Errors wrap ErrInvalidPolicy and say which
// part is wrong.
func ParsePolicy(s string) (Limit, error) {
	fail := func(format string, args ...any) (Limit, error) {
		return Limit{}, fmt.Errorf("%w %q: %s", ErrInvalidPolicy, s, fmt.Sprintf(format, args...))
	}
	parts := strings.Split(strings.TrimSpace(s), ",")
	rateStr, unit, ok := strings.Cut(strings.TrimSpace(parts[0]), "/")
	if !ok {
		return fail("want <rate>/<unit>, e.g. 1000/s")
	}
	rate, err := strconv.Atoi(strings.TrimSpace(rateStr))
	if err != nil || rate <= 0 {
		return fail("rate %q must be a positive integer", rateStr)
	}
	var l Limit
	l.Rate = rate
	switch unit = strings.TrimSpace(unit); unit {
	case "s":
		l.Period = time.Second
	case "m":
		l.Period = time.Minute
	case "h":
		l.Period = time.Hour
	default:
		d, err := time.ParseDuration(unit)
		if err != nil || d < time.Microsecond {
			return fail("unit %q must be s, m, h or a duration of at least 1µs", unit)
		}
		l.Period = d
	}
	seen := map[string]bool{}
	for _, p := range parts[1:] {
		name, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			return fail("option %q must be name=value", p)
		}
		if seen[name] {
			return fail("option %q given twice", name)
		}
		seen[name] = true
		switch name {
		case "burst":
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 {
				return fail("burst %q must be a positive integer", val)
			}
			l.Burst = n
		case "alg":
			switch val {
			case "gcra":
				l.Algorithm = GCRA
			case "sliding_window":
				l.Algorithm = SlidingWindow
			case "fixed_window":
				l.Algorithm = FixedWindow
			default:
				return fail("alg %q must be gcra, sliding_window or fixed_window", val)
			}
		default:
			return fail("unknown option %q (want burst=<n>)", name)
		}
	}
	if l.Algorithm != GCRA && l.Burst != 0 {
		return fail("burst applies to gcra only")
	}
	return l.normalize(), nil
}
