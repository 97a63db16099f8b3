package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/sluice-ingest/sluice/gateway/internal/body"
	"github.com/sluice-ingest/sluice/gateway/internal/decode"
	"github.com/sluice-ingest/sluice/gateway/internal/otlp"
)

// memoryPlan is what the gateway's memory is made of, each part bounded by
// a setting whatever the bodies are: requests in flight by
// SLUICE_MAX_INFLIGHT, each with its fixed part; their output buffers and
// zstd windows by SLUICE_MAX_INFLIGHT_BYTES (decode answers 503 past it);
// the rest by a base including the NATS write buffer (the largest message).
type memoryPlan struct {
	base       int64 // runtime, HTTP server, NATS client, limiter, metrics
	perRequest int64 // a decoding's fixed part, its connection and goroutine
	requests   int64 // SLUICE_MAX_INFLIGHT
	inflight   int64 // SLUICE_MAX_INFLIGHT_BYTES
}

// Fixed parts, measured with pprof on the gateway under load and rounded
// up: the process's base is under 40 MiB of heap and stacks, plus the NATS
// client's 8 MiB reconnect buffer and its write buffer of one message; an
// HTTP connection with its goroutine holds under 64 KiB.
const (
	baseBytes          = 64 << 20
	natsReconnectBytes = 8 << 20
	connBytes          = 64 << 10
	// textBytes is what the process holds outside the Go runtime's
	// accounting (the executable's pages, the kernel side of its threads)
	// and the heap's overshoot of the soft limit while a collection runs.
	textBytes = 64 << 20
)

func (s settings) memory() memoryPlan {
	return memoryPlan{
		base:       baseBytes + natsReconnectBytes + s.limits.MaxDecodedBytes,
		perRequest: body.FixedBytesPerRequest + connBytes,
		requests:   int64(s.maxInflight),
		inflight:   s.limits.MaxInflightBytes,
	}
}

// gcPercent is the GOGC the gateway sets (unless GOGC is in its
// environment): the heap may grow to five times what is live before a
// collection, a few tens of MiB under load, and never past softLimit.
const gcPercent = 400

// tuneMemory sets the soft memory limit and GOGC from the settings, unless
// GOMEMLIMIT or GOGC is in the environment.
func tuneMemory(s settings, getenv func(string) string, log *slog.Logger) {
	if getenv("GOMEMLIMIT") == "" {
		limit := s.memory().softLimit()
		debug.SetMemoryLimit(limit)
		log.Debug("memory limit set", "bytes", limit)
	}
	if getenv("GOGC") == "" {
		// The soft limit bounds the heap, so the collector need not run
		// each time the small live heap doubles: at 1 event/request it
		// took about 7 % of the gateway's CPU with the default of 100.
		debug.SetGCPercent(gcPercent)
	}
}

// live is the most the process holds in use at once.
func (p memoryPlan) live() int64 { return p.base + p.requests*p.perRequest + p.inflight }

// softLimit is the GOMEMLIMIT the gateway sets (unless GOMEMLIMIT is in
// its environment): what it holds in use plus half the in-flight bytes
// for the garbage collector's headroom (the buffers that were grown
// and not yet collected), instead of the heap doubling.
func (p memoryPlan) softLimit() int64 { return p.live() + p.inflight/2 }

// bound is the documented bound of the gateway's resident memory.
func (p memoryPlan) bound() int64 { return p.softLimit() + textBytes }

// check refuses settings that cannot work: an in-flight budget too small
// for one request at the decoded limit, or a bound over the container's
// memory limit (0: none known).
func (s settings) checkMemory(containerLimit int64) error {
	p := s.memory()
	need := max(decode.MaxBytesPerRequest(s.limits.MaxDecodedBytes), otlp.MaxBytesPerRequest(s.limits.MaxDecodedBytes))
	if s.limits.MaxInflightBytes < need {
		return fmt.Errorf("SLUICE_MAX_INFLIGHT_BYTES=%d: must hold at least one request at SLUICE_MAX_DECODED_BYTES (%d bytes: its output and a zstd window as large, or the buffers of an OTLP request)", s.limits.MaxInflightBytes, need)
	}
	if containerLimit > 0 && p.bound() > containerLimit {
		return fmt.Errorf("the gateway's memory bound is %d MiB with these settings (SLUICE_MAX_INFLIGHT_BYTES, SLUICE_MAX_INFLIGHT x %d KiB, SLUICE_MAX_DECODED_BYTES), over the container's memory limit of %d MiB: lower them or raise the limit", p.bound()>>20, p.perRequest>>10, containerLimit>>20)
	}
	return nil
}

// containerMemoryLimit is the cgroup's memory limit, or 0 when there is
// none (or it cannot be read).
func containerMemoryLimit() int64 {
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n <= 0 || n >= 1<<60 { // "max", or cgroup v1's "unlimited"
			return 0
		}
		return n
	}
	return 0
}
