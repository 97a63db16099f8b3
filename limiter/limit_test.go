package limiter

import (
	"errors"
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		in   string
		want Limit
		err  bool
	}{
		{in: "1000/s,burst=2000", want: Limit{Rate: 1000, Period: time.Second, Burst: 2000}},
		{in: "60000/m", want: Limit{Rate: 60000, Period: time.Minute, Burst: 60000}},
		{in: "5/h", want: Limit{Rate: 5, Period: time.Hour, Burst: 5}},
		{in: " 10 / s , burst=3 ", want: Limit{Rate: 10, Period: time.Second, Burst: 3}},
		{in: "10/100ms", want: Limit{Rate: 10, Period: 100 * time.Millisecond, Burst: 10}},
		{in: "10/s,alg=sliding_window", want: Limit{Algorithm: SlidingWindow, Rate: 10, Period: time.Second, Burst: 10}},
		{in: "10/s,alg=fixed_window", want: Limit{Algorithm: FixedWindow, Rate: 10, Period: time.Second, Burst: 10}},
		{in: "", err: true},
		{in: "off", err: true},
		{in: "1000", err: true},
		{in: "0/s", err: true},
		{in: "-1/s", err: true},
		{in: "x/s", err: true},
		{in: "10/d", err: true},
		{in: "10/0s", err: true},
		{in: "10/s,burst=0", err: true},
		{in: "10/s,burst=x", err: true},
		{in: "10/s,burst", err: true},
		{in: "10/s,burst=1,burst=2", err: true},
		{in: "10/s,limit=5", err: true},
		{in: "10/s,alg=leaky", err: true},
		{in: "10/s,alg=fixed_window,burst=20", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePolicy(tt.in)
			if tt.err {
				if !errors.Is(err, ErrInvalidPolicy) {
					t.Fatalf("ParsePolicy(%q) error = %v, want ErrInvalidPolicy", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePolicy(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			again, err := ParsePolicy(got.String())
			if err != nil || again != got {
				t.Fatalf("round trip via %q = %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestLimitValidate(t *testing.T) {
	bad := []Limit{
		{},
		{Rate: 1},
		{Rate: 1, Period: time.Nanosecond},
		{Rate: 1, Period: time.Second, Burst: -1},
		{Algorithm: 9, Rate: 1, Period: time.Second},
	}
	for _, l := range bad {
		if err := l.Validate(); !errors.Is(err, ErrInvalidLimit) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidLimit", l, err)
		}
	}
	if err := PerSecond(1).Validate(); err != nil {
		t.Errorf("PerSecond(1): %v", err)
	}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"open", "closed", "local"} {
		m, err := ParseMode(s)
		if err != nil || m.String() != s {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseMode("fail"); !errors.Is(err, ErrInvalidMode) {
		t.Errorf("ParseMode(fail) error = %v, want ErrInvalidMode", err)
	}
}

func TestHeaders(t *testing.T) {
	tests := []struct {
		name string
		res  Result
		want HeaderValues
	}{
		{
			name: "allowed",
			res:  Result{Allowed: true, Limit: Limit{Rate: 1000, Period: time.Second, Burst: 2000}, Remaining: 1999, ResetAfter: time.Millisecond},
			want: HeaderValues{Policy: `"default";q=2000;w=1`, RateLimit: `"default";r=1999;t=1`},
		},
		{
			name: "denied",
			res:  Result{Limit: Limit{Rate: 60000, Period: time.Minute}, RetryAfter: 1500 * time.Millisecond, ResetAfter: time.Minute},
			want: HeaderValues{Policy: `"default";q=60000;w=60`, RateLimit: `"default";r=0;t=2`, RetryAfter: "2"},
		},
		{
			name: "sub-second",
			res:  Result{Allowed: true, Limit: Limit{Algorithm: FixedWindow, Rate: 10, Period: 100 * time.Millisecond}, Remaining: 3, ResetAfter: 40 * time.Millisecond},
			want: HeaderValues{Policy: `"default";q=100;w=1`, RateLimit: `"default";r=3;t=1`},
		},
		{
			name: "never",
			res:  Result{Limit: Limit{Rate: 5, Period: time.Minute}, RetryAfter: -1},
			want: HeaderValues{Policy: `"default";q=5;w=60`, RateLimit: `"default";r=0;t=60`, RetryAfter: "60"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Headers("default", tt.res); got != tt.want {
				t.Fatalf("Headers = %+v\nwant      %+v", got, tt.want)
			}
		})
	}
	if got := Headers(`a"b\`+"\n", Result{Allowed: true, Limit: PerSecond(1)}).Policy; got != `"a\"b\\?";q=1;w=1` {
		t.Fatalf("escaped name: %s", got)
	}
}

func TestRedisKeyTag(t *testing.T) {
	for _, key := range []string{"", "a", "a:b", "2001:db8::1", "{x}", "}{", "ключ", "\x00\xff"} {
		k, tg := redisKey("rl:", GCRA, PerSecond(1), key)
		s := slot(tg)
		open := indexByte(k, '{')
		close := indexByte(k[open:], '}') + open
		tag := k[open+1 : close]
		if len(tag) != 16 || keyTag(key) != tag || slot(tag) != s {
			t.Errorf("key %q: redis key %q, tag %q, slot %d", key, k, tag, s)
		}
	}
	// CRC16 reference values from the Redis Cluster specification.
	if got := slot("123456789"); got != 0x31C3%16384 {
		t.Errorf("slot(123456789) = %d", got)
	}
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}
