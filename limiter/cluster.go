package limiter

import (
	"context"
	"fmt"
)

// bySlot groups the indices 0..n-1 by their Redis Cluster slot, groups in
// the order their first index appears.
func bySlot(n int, slotOf func(int) uint16) [][]int {
	var groups [][]int
	at := map[uint16]int{}
	for i := range n {
		s := slotOf(i)
		g, ok := at[s]
		if !ok {
			g = len(groups)
			at[s] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

// crossSlot is AllowAll across Redis Cluster slots: one atomic group per
// slot in one pipeline, then refunds for the allowed slots if any denied.
func (l *Limiter) crossSlot(ctx context.Context, c *call) ([]int64, error) {
	groups := bySlot(len(c.keys), func(i int) uint16 { return c.slots[i] })
	parts := make([]*call, len(groups))
	for g, idx := range groups {
		p := &call{}
		for _, i := range idx {
			p.keys = append(p.keys, c.keys[i])
			p.lims = append(p.lims, c.lims[i])
			p.costs = append(p.costs, c.costs[i])
		}
		parts[g] = p
	}
	decide := func(ps []*call, refund bool) ([]reply, error) {
		invs := make([]invocation, len(ps))
		for i, p := range ps {
			invs[i].keys, invs[i].args = compose([]entry{{p}}, refund)
		}
		replies := evalAll(ctx, l.rdb, l.s.decide, invs)
		for _, r := range replies {
			if r.err != nil {
				return nil, r.err
			}
		}
		return replies, nil
	}
	replies, err := decide(parts, false)
	if err != nil {
		return nil, err
	}
	out := make([]int64, 4*len(c.keys))
	denied := false
	var allowed []*call
	var allowedIdx [][]int
	for g, idx := range groups {
		v := replies[g].v
		if len(v) != 4*len(idx) {
			return nil, fmt.Errorf("decide script returned %d integers, want %d", len(v), 4*len(idx))
		}
		for k, i := range idx {
			copy(out[i*4:i*4+4], v[k*4:k*4+4])
		}
		if v[0] == 1 {
			allowed = append(allowed, parts[g])
			allowedIdx = append(allowedIdx, idx)
		} else {
			denied = true
		}
	}
	if denied && len(allowed) > 0 {
		if _, err := decide(allowed, true); err != nil {
			return nil, fmt.Errorf("refund after cross-slot denial: %w", err)
		}
		for g, idx := range allowedIdx {
			for k, i := range idx {
				out[i*4] = 0
				out[i*4+1] += int64(allowed[g].costs[k])
			}
		}
	}
	return out, nil
}
