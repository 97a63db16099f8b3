package pipeline

import (
	"sync"
	"time"
)

// logEvery lets a repeated log line through at most once per interval and
// counts the ones it held back, so a condition that fails on every message
// or attempt (S3 refusing this worker, a full DLQ) is reported without
// flooding the log.
type logEvery struct {
	every time.Duration
	mu    sync.Mutex
	last  time.Time
	held  int
}

// allow reports whether to log now and, if so, how many lines were held
// back since the last one.
func (l *logEvery) allow(now time.Time) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.held++
		return false, 0
	}
	held, l.held, l.last = l.held, 0, now
	return true, held
}

// reset lets the next line through at once.
func (l *logEvery) reset() {
	l.mu.Lock()
	l.last, l.held = time.Time{}, 0
	l.mu.Unlock()
}
