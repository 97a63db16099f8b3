package pipeline

import (
	"context"
	"sync"
)

// budget counts the bytes the worker holds: each message in an open object,
// a cut one waiting for an uploader or an upload (its body plus msgOverhead),
// plus the encoded object of each upload. The fetch goroutines (one per
// consumer read) wait for room before they fetch.
type budget struct {
	max  int64
	mu   sync.Mutex
	used int64
	// reserved is the room promised to fetches under way (reserve); it
	// is not held yet, so it counts for the room only.
	reserved int64
	// freed is closed, and replaced, when bytes are released: every
	// fetch goroutine waiting wakes, not only one of them, or a consumer
	// could wait forever while the budget has room.
	freed chan struct{}
}

func newBudget(max int64) *budget {
	return &budget{max: max, freed: make(chan struct{})}
}

func (b *budget) add(n int64) {
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	close(b.freed)
	b.freed = make(chan struct{})
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
		b.mu.Lock()
		left, freed := b.max-b.used-b.reserved, b.freed
		b.mu.Unlock()
		if left > 0 {
			return left
		}
		select {
		case <-freed:
		case <-ctx.Done():
			return 0
		}
	}
}

// reservation is the room a fetch holds for what it may deliver, so that
// the fetches of several consumers share the room: each message delivered
// moves its bytes from the reservation to the bytes held (past the
// reservation, they are added), and end gives back what is left.
type reservation struct {
	b    *budget
	left int64
}

// reserve promises n bytes of room to a fetch.
func (b *budget) reserve(n int64) *reservation {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reserved += n
	return &reservation{b: b, left: n}
}

// take counts n bytes delivered as held.
func (r *reservation) take(n int64) {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	used := min(n, r.left)
	r.left -= used
	r.b.reserved -= used
	r.b.used += n
}

// end gives back the room not used.
func (r *reservation) end() {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	r.b.reserved -= r.left
	r.left = 0
	close(r.b.freed)
	r.b.freed = make(chan struct{})
}
