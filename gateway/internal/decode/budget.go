package decode

// charge reserves n more bytes of the Budget for st; put gives back all
// st holds. What a decoding charges is its output grown past maxPooledOut
// and a zstd window past zstdPooledWindow.
func (st *state) charge(n int64) error {
	if err := st.d.budget.Reserve(n); err != nil {
		return err
	}
	st.charged += n
	return nil
}

func (st *state) release(n int64) {
	st.d.budget.Unreserve(n)
	st.charged -= n
}

// Grow makes room in out for everything the input read so far can
// produce (need bytes: see body.Hooks), so no append reallocates: out
// grows here only, doubling up to the decoded limit, and a buffer larger
// than maxPooledOut is charged before it is made (the old one is held until
// the copy is done).
func (st *state) Grow(need int) error {
	if need <= cap(st.out) {
		return nil
	}
	n := max(min(max(2*cap(st.out), 4<<10), int(st.d.budget.MaxDecodedBytes())+1), need)
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
