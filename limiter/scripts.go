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

// invocation is one run of a script: its keys and arguments.
type invocation struct {
	keys []string
	args []any
}

// reply is the integers one invocation returned, or why it failed.
type reply struct {
	v   []int64
	err error
}

// runScript runs s once with EVALSHA and returns its integers.
func runScript(ctx context.Context, rdb redis.Scripter, s *redis.Script, keys []string, args ...any) ([]int64, error) {
	r := evalAll(ctx, rdb, s, []invocation{{keys, args}})[0]
	return r.v, r.err
}

// evalAll runs each invocation of s with EVALSHA, in one pipeline when there
// are several, and returns one reply per invocation. It is the one place that
// recovers from NOSCRIPT (a restarted or flushed server, or a failover to a
// replica that never saw the script): the invocations that got it run again
// once with EVAL, which also caches the script on the server (on a cluster,
// on the node that owns the invocation's slot).
func evalAll(ctx context.Context, rdb redis.Scripter, s *redis.Script, invs []invocation) []reply {
	out := make([]reply, len(invs))
	run(ctx, rdb, invs, out, s.EvalSha)
	var again []int
	for i, r := range out {
		if isNoScript(r.err) {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return out
	}
	retry := make([]invocation, len(again))
	for k, i := range again {
		retry[k] = invs[i]
	}
	replies := make([]reply, len(again))
	run(ctx, rdb, retry, replies, s.Eval)
	for k, i := range again {
		out[i] = replies[k]
	}
	return out
}

// run sends invs with send (EVALSHA or EVAL): one command, or a pipeline.
func run(ctx context.Context, rdb redis.Scripter, invs []invocation, out []reply,
	send func(context.Context, redis.Scripter, []string, ...any) *redis.Cmd) {
	cmds := make([]*redis.Cmd, len(invs))
	if p, ok := rdb.(pipeliner); ok && len(invs) > 1 {
		pipe := p.Pipeline()
		for i, inv := range invs {
			cmds[i] = send(ctx, pipe, inv.keys, inv.args...)
		}
		_, _ = pipe.Exec(ctx) // each command carries its own error
	} else {
		for i, inv := range invs {
			cmds[i] = send(ctx, rdb, inv.keys, inv.args...)
		}
	}
	for i, cmd := range cmds {
		v, err := cmd.Result()
		if err == nil {
			out[i].v, out[i].err = toInts(v)
		} else {
			out[i].err = err
		}
	}
}

// pipeliner is a client that can pipeline commands.
type pipeliner interface {
	Pipeline() redis.Pipeliner
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
