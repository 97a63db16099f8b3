package limiter

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// crossSlot is AllowAll across Redis Cluster slots: one atomic group per
// slot in one pipeline, then refunds for the allowed slots if any denied.
func (l *Limiter) crossSlot(ctx context.Context, c *call, slots []uint16) ([]int64, error) {
	type group struct {
		idx []int
		c   *call
		cmd *redis.Cmd
	}
	var groups []*group
	bySlot := map[uint16]*group{}
	for i, s := range slots {
		g := bySlot[s]
		if g == nil {
			g = &group{c: &call{}}
			bySlot[s] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
		g.c.keys = append(g.c.keys, c.keys[i])
		g.c.lims = append(g.c.lims, c.lims[i])
		g.c.costs = append(g.c.costs, c.costs[i])
	}
	run := func(gs []*group, refund bool) error {
		pipe := l.rdb.Pipeline()
		for _, g := range gs {
			keys, args := compose([]*call{g.c}, refund)
			g.cmd = l.s.decide.EvalSha(ctx, pipe, keys, args...)
		}
		_, _ = pipe.Exec(ctx)
		for _, g := range gs {
			if isNoScript(g.cmd.Err()) {
				if err := l.s.decide.Load(ctx, l.rdb).Err(); err != nil {
					return fmt.Errorf("load decide script: %w", err)
				}
				return errRetry
			}
			if err := g.cmd.Err(); err != nil {
				return err
			}
		}
		return nil
	}
	err := run(groups, false)
	if errors.Is(err, errRetry) {
		err = run(groups, false)
	}
	if err != nil {
		return nil, err
	}
	out := make([]int64, 4*len(c.keys))
	denied := false
	var allowed []*group
	for _, g := range groups {
		v, err := toInts(g.cmd.Val())
		if err != nil {
			return nil, err
		}
		for k, i := range g.idx {
			copy(out[i*4:i*4+4], v[k*4:k*4+4])
		}
		if v[0] == 1 {
			allowed = append(allowed, g)
		} else {
			denied = true
		}
	}
	if denied && len(allowed) > 0 {
		if err := run(allowed, true); err != nil {
			return nil, fmt.Errorf("refund after cross-slot denial: %w", err)
		}
		for _, g := range allowed {
			for k, i := range g.idx {
				out[i*4] = 0
				out[i*4+1] += int64(g.c.costs[k])
			}
		}
	}
	return out, nil
}

var errRetry = errors.New("retry")
