package limiter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"
)

// janitor sweeps expired deny-cache entries and idle local state.
func (l *Limiter) janitor() {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.janitorInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case now := <-t.C:
			if l.deny != nil {
				l.deny.sweep(now)
			}
			l.local.sweep(now)
		}
	}
}

func (l *Limiter) instancesKey() string { return l.cfg.prefix + "{instances}" }

// heartbeat keeps this instance in the Redis heartbeat set and learns how
// many instances are alive, for ModeLocal's share of each limit.
func (l *Limiter) heartbeat() {
	defer l.wg.Done()
	beat := func() {
		timeout := max(l.cfg.deadline, 100*time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		ttl := 3 * l.cfg.heartbeat
		v, err := l.within(ctx, timeout, func(ctx context.Context) ([]int64, error) {
			return runScript(ctx, l.rdb, l.s.heartbeat, []string{l.instancesKey()}, l.cfg.instanceID, ttl.Microseconds())
		})
		if err != nil {
			l.cfg.observer.ObserveBackendError("heartbeat", err)
			return
		}
		if len(v) == 1 && v[0] > 0 {
			l.local.instances.Store(v[0])
		}
	}
	beat()
	t := time.NewTicker(l.cfg.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			beat()
		}
	}
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
