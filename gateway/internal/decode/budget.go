package decode

import (
	"sync/atomic"

	"github.com/sluice-ingest/sluice/client/apierror"
)

// budget counts the bytes that decodings in flight hold beyond their fixed
// part (the input window and the buffers a pooled state keeps): output
// grown past maxPooledOut and zstd windows past zstdPooledWindow. A
// decoding that would take it over its limit is refused with ErrBusy, so
// memory follows the setting, never the number or shape of the bodies.
type budget struct {
	limit int64
	used  atomic.Int64
}

// take reserves n bytes, or reports that they are not there.
func (b *budget) take(n int64) bool {
	if b.used.Add(n) > b.limit {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *budget) give(n int64) { b.used.Add(-n) }

// ErrBusy refuses a body because the decodings in flight already hold
// Limits.MaxInflightBytes: the request is fine and can be sent again.
var ErrBusy = errorf(apierror.Overloaded, "the gateway holds too many bytes of requests in flight; retry later")

// charge reserves n more bytes for st; put gives back all st holds.
func (st *state) charge(n int64) error {
	if !st.d.budget.take(n) {
		return ErrBusy
	}
	st.charged += n
	return nil
}

func (st *state) release(n int64) {
	st.d.budget.give(n)
	st.charged -= n
}

// grow makes room in out for everything the input read so far can
// produce (need bytes: see scanner.fill), so no append reallocates: out
// grows here only, doubling up to the decoded limit, and a buffer larger
// than maxPooledOut is charged before it is made (the old one is held until
// the copy is done).
func (st *state) grow(need int) error {
	if need <= cap(st.out) {
		return nil
	}
	n := max(min(max(2*cap(st.out), 4<<10), int(st.d.maxDecoded.Load())+1), need)
	if n > maxPooledOut {
		if err := st.charge(int64(n)); err != nil {
			return err
		}
	}
	out := make([]byte, len(st.out), n)
	copy(out, st.out)
	if cap(st.out) > maxPooledOut {
		st.release(int64(cap(st.out)))
	}
	st.out = out
	return nil
}
