package otlp

import "github.com/sluice-ingest/sluice/gateway/internal/body"

// maxPooled is what each buffer of a decoding may hold without being
// charged to the budget, and the largest kept for reuse; larger ones are
// left to the GC so that a burst of big requests does not pin memory.
// A decoding's six buffers (the body, its protobuf form, the events, the
// resource's and the scope's members, a string) and its gzip reader stay
// within body.FixedBytesPerRequest.
const maxPooled = 32 << 10

// account charges the bytes a decoding's buffers hold past maxPooled to
// the Budget as they grow: each growth is charged at the next
// check (after every string, value and record), so what is held uncharged
// is at most the buffer grown last.
type account struct {
	budget  *body.Budget
	bufs    [6]*[]byte
	charged int64
}

// sync charges what the buffers hold now beyond what was charged, or
// fails with body.ErrBusy.
func (a *account) sync() error {
	var n int64
	for _, b := range a.bufs {
		if c := int64(cap(*b)) - maxPooled; c > 0 {
			n += c
		}
	}
	if n <= a.charged {
		return nil
	}
	if err := a.budget.Reserve(n - a.charged); err != nil {
		return err
	}
	a.charged = n
	return nil
}

// release gives back everything charged; the buffers past maxPooled are
// dropped by the caller.
func (a *account) release() {
	if a.charged > 0 {
		a.budget.Unreserve(a.charged)
		a.charged = 0
	}
}

// MaxBytesPerRequest is the most one decoding can charge to the budget:
// the body, the protobuf form of a JSON body and the events, each at most
// the decoded limit and a quarter more for the growth of its buffer, and
// the resource's and the scope's members, each at most the limit.
func MaxBytesPerRequest(maxDecoded int64) int64 { return 6 * maxDecoded }
