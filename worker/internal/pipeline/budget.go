package pipeline

import (
	"context"
	"sync"
)

// budget counts the bytes the worker holds: each message in an open batch,
// a batch waiting for an uploader or an upload (its body plus msgOverhead),
// plus the encoded object of each upload. The fetch goroutine waits for
// room before it fetches.
type budget struct {
	max   int64
	mu    sync.Mutex
	used  int64
	freed chan struct{} // signalled when bytes are released
}

func newBudget(max int64) *budget {
	return &budget{max: max, freed: make(chan struct{}, 1)}
}

func (b *budget) add(n int64) {
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
	select {
	case b.freed <- struct{}{}:
	default:
	}
}

// Used is the bytes held now.
func (b *budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

func (b *budget) full() bool { return b.Used() >= b.max }

// waitRoom blocks while the budget is full, then returns the room left. It
// returns 0 when ctx ends first.
func (b *budget) waitRoom(ctx context.Context) int64 {
	for {
		if left := b.max - b.Used(); left > 0 {
			return left
		}
		select {
		case <-b.freed:
		case <-ctx.Done():
			return 0
		}
	}
}
