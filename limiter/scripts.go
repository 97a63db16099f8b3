package limiter

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed lua/decide.lua
	decideLua string
	//go:embed lua/acquire.lua
	acquireLua string
	//go:embed lua/release.lua
	releaseLua string
	//go:embed lua/heartbeat.lua
	heartbeatLua string
)

// scripts are the Lua scripts one Limiter runs. They are values, not
// globals: each Limiter owns its set.
type scripts struct {
	decide, acquire, release, heartbeat *redis.Script
}

func newScripts() scripts {
	return scripts{
		decide:    redis.NewScript(decideLua),
		acquire:   redis.NewScript(acquireLua),
		release:   redis.NewScript(releaseLua),
		heartbeat: redis.NewScript(heartbeatLua),
	}
}

// isNoScript reports a NOSCRIPT reply: the server lost its script cache
// (restart, SCRIPT FLUSH, failover to a replica that never saw the script).
func isNoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}

// runScript is EVALSHA with a NOSCRIPT fallback to EVAL (which also caches
// the script server-side for the next EVALSHA).
func runScript(ctx context.Context, rdb redis.Scripter, s *redis.Script, keys []string, args ...any) ([]int64, error) {
	v, err := s.EvalSha(ctx, rdb, keys, args...).Result()
	if isNoScript(err) {
		v, err = s.Eval(ctx, rdb, keys, args...).Result()
	}
	if err != nil {
		return nil, err
	}
	return toInts(v)
}

func toInts(v any) ([]int64, error) {
	switch x := v.(type) {
	case int64:
		return []int64{x}, nil
	case []any:
		out := make([]int64, len(x))
		for i, e := range x {
			n, ok := e.(int64)
			if !ok {
				return nil, fmt.Errorf("script reply element %d is %T, want integer", i, e)
			}
			out[i] = n
		}
		return out, nil
	}
	return nil, fmt.Errorf("script reply is %T, want integers", v)
}
