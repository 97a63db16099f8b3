//go:build !unix

package limiter

import (
	"testing"
	"time"
)

// processCPU is not measured here: go-cpu-µs/decision reads 0.
func processCPU(*testing.B) time.Duration { return 0 }
