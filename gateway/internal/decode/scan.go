package decode

import "io"

// readBufSize is the window of the decoded body the scanner holds at once.
const readBufSize = 16 << 10

// scanner reads the decoded body through a fixed window and copies the
// bytes the grammar accepts to out. It knows nothing of JSON but whitespace.
type scanner struct {
	in   []byte // input window; unread bytes are in[r:w]
	r, w int
	base int64 // offset of in[0] in the decoded body
	src  io.Reader
	rerr error // first error of src (io.EOF at the end)
	// newlines marks an NDJSON body, where a newline ends an event and so
	// is not whitespace.
	newlines bool
	out      []byte
	// hooks is what the scanner asks of the decoding it serves: room in out,
	// and the meaning of a read error.
	hooks scanHooks
}

// scanHooks is what a decoding provides to its scanner.
type scanHooks interface {
	// grow makes out's capacity at least need bytes, so that no append of
	// the input read so far reallocates.
	grow(need int) error
	// readError maps an error other than io.EOF met reading src.
	readError(err error) *Error
}

// skipSpace skips whitespace and returns the next byte without consuming
// it; false at the end of the input or on a read error (see rerr).
func (s *scanner) skipSpace() (byte, bool) {
	for {
		for s.r < s.w {
			switch c := s.in[s.r]; c {
			case ' ', '\t', '\r':
				s.r++
			case '\n':
				if s.newlines {
					return c, true
				}
				s.r++
			default:
				return c, true
			}
		}
		if !s.fill() {
			return 0, false
		}
	}
}

func (s *scanner) peek() (byte, bool) {
	if s.r == s.w && !s.fill() {
		return 0, false
	}
	return s.in[s.r], true
}

// take copies the next byte to out.
func (s *scanner) take() {
	s.out = append(s.out, s.in[s.r])
	s.r++
}

// ensure tries to have n unread bytes in the window; false when the input
// ends first.
func (s *scanner) ensure(n int) bool {
	for s.w-s.r < n {
		if !s.fill() {
			return false
		}
	}
	return true
}

// fill reads more input into the window, keeping the unread bytes, and
// has out grown for it. It returns false when nothing more can be read;
// rerr says why.
func (s *scanner) fill() bool {
	if s.rerr != nil {
		return false
	}
	if s.r > 0 {
		s.w = copy(s.in, s.in[s.r:s.w])
		s.base += int64(s.r)
		s.r = 0
	}
	for range 100 {
		n, err := s.src.Read(s.in[s.w:])
		s.w += n
		if n > 0 {
			// The output is the compact input plus at most one newline.
			if gerr := s.hooks.grow(int(s.base) + s.w + 1); gerr != nil {
				s.rerr = gerr
				return false
			}
		}
		if err != nil {
			s.rerr = err
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
	s.rerr = io.ErrNoProgress
	return false
}

// failed is the error for input that ended, or failed, where more was
// needed; nil at a clean end.
func (s *scanner) failed() *Error {
	if s.rerr == io.EOF {
		return nil
	}
	return s.hooks.readError(s.rerr)
}
