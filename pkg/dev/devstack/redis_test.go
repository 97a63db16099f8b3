package devstack_test

import (
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-ingest/sluice/limiter/proctest"
	"github.com/sluice-ingest/sluice/limiter/redistest"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
)

// The dev stack's Redis is a real redis-server when one is installed, and
// the embedded server only when allowed and none is.
func TestStartRedis(t *testing.T) {
	ping := func(r *devstack.Redis) error {
		c := redis.NewClient(&redis.Options{Addr: r.Addr()})
		defer c.Close()
		return c.Ping(t.Context()).Err()
	}
	t.Run("redis-server", func(t *testing.T) {
		if _, err := proctest.FindBinary(redistest.Binary, redistest.BinaryEnv); err != nil {
			proctest.Missing(t, err)
		}
		r, err := devstack.StartRedis(t.Context(), devstack.RedisOptions{Dir: t.TempDir(), AllowEmbedded: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Stop()
		if r.Kind != redistest.Binary || r.Pid() == 0 {
			t.Errorf("kind %q, pid %d; want a redis-server process", r.Kind, r.Pid())
		}
		if err := ping(r); err != nil {
			t.Error(err)
		}
	})
	t.Run("none installed", func(t *testing.T) {
		t.Setenv(redistest.BinaryEnv, "")
		t.Setenv("PATH", t.TempDir())
		t.Chdir(t.TempDir()) // no .bin/ above
		_, err := devstack.StartRedis(t.Context(), devstack.RedisOptions{Dir: t.TempDir()})
		if !errors.Is(err, devstack.ErrNotFound) {
			t.Errorf("without AllowEmbedded: err = %v, want ErrNotFound", err)
		}
		r, err := devstack.StartRedis(t.Context(), devstack.RedisOptions{Dir: t.TempDir(), AllowEmbedded: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Stop()
		if r.Kind != "embedded (miniredis)" || r.Pid() != 0 {
			t.Errorf("kind %q, pid %d; want the embedded server", r.Kind, r.Pid())
		}
		if err := ping(r); err != nil {
			t.Error(err)
		}
	})
}
