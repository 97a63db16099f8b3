//go:build unix

package limiter

import (
	"syscall"
	"testing"
	"time"
)

// processCPU is the CPU time this process has used (user + system): the
// limiter, the go-redis client and the benchmark's callers.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
