package limiter

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// An option given a value it cannot use makes New fail, naming the value,
// instead of being rewritten to something else.
func TestOptionsValidate(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	for _, tt := range []struct {
		opt  Option
		want string
	}{
		{WithPrefix("a{b"), `prefix "a{b"`},
		{WithDeadline(0), "deadline 0s"},
		{WithDeadline(-time.Second), "deadline -1s"},
		{WithMode(Mode(9)), "unknown mode 9"},
		{WithObserver(nil), "nil observer"},
		{WithFlush(0, 0, 2), "flush size 0"},
		{WithFlush(8, -time.Millisecond, 2), "flush delay -1ms"},
		{WithFlush(8, 0, 0), "flushers 0"},
		{WithBreaker(0, time.Second), "breaker failures 0"},
		{WithBreaker(3, 0), "breaker cooldown 0s"},
		{WithInstance("a", 0), "heartbeat interval 0s"},
	} {
		l, err := New(rdb, tt.opt)
		if l != nil || !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New with a bad option: %v, %v; want ErrInvalidOption naming %q", l, err, tt.want)
		}
	}
	l, err := New(rdb, WithPrefix("app:"), WithInstance("", time.Second), WithFlush(1, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Close()
}
