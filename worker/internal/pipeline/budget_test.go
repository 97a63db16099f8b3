package pipeline

import (
	"sync"
	"testing"
	"time"
)

// Every fetch goroutine waiting for room gets it once bytes are released,
// however many wait: one consumer left waiting would never be read again
// while the budget has room.
func TestBudgetWakesEveryWaiter(t *testing.T) {
	b := newBudget(100)
	b.add(100)
	const waiters = 17
	var started, woke sync.WaitGroup
	for range waiters {
		started.Add(1)
		woke.Go(func() {
			started.Done()
			if room := b.waitRoom(t.Context()); room <= 0 {
				t.Errorf("waitRoom returned %d", room)
			}
		})
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond) // let them all block
	b.release(60)
	b.release(40)
	done := make(chan struct{})
	go func() { woke.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("a fetch goroutine still waits for room with the budget empty")
	}
}
