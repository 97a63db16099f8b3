package decode

import (
	"io"

	"github.com/klauspost/compress/zstd"

	"github.com/sluice-ingest/sluice/client/apierror"
	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

// zstdPooledWindow is the largest window of the zstd decoder a pooled state
// keeps. A streaming zstd decoder allocates its whole window (plus two
// blocks of room) as soon as a frame starts, and keeps it for its next
// frames, so a decoder for a larger window is made for its request alone,
// its memory charged to the budget, and dropped afterwards.
const zstdPooledWindow = 64 << 10

// zstdRing is what a streaming decoder allocates for a window: the window
// plus room for two blocks of at most 128 KiB (klauspost/compress's ring).
func zstdRing(window int64) int64 { return window + 2*(min(window, 128<<10)+64) }

// newZstd returns a decoder that decodes in the calling goroutine
// (concurrency 1), keeps little memory between uses, and refuses frames
// whose window is larger than maxWindow.
func newZstd(maxWindow int64) *zstd.Decoder {
	zs, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(uint64(max(maxWindow, zstd.MinWindowSize))),
	)
	if err != nil {
		panic("zstd decoder options: " + err.Error()) // checked limits: a programming error
	}
	return zs
}

// zstdSource returns the decompressed body of a zstd request. It reads the
// first frame's header to learn the window the frame needs, which is never
// allowed past the decoded limit (no frame needs more history than it may
// produce), and picks the decoder: the state's pooled one up to
// zstdPooledWindow, else one of the frame's size, charged to the budget. A
// later frame that needs a larger window than the first is refused.
func (st *state) zstdSource() (io.Reader, error) {
	n, _ := io.ReadFull(&st.wire, st.zhead[:])
	if err := st.wire.Err(); err != nil {
		return nil, err
	}
	st.zin = prefixReader{head: st.zhead[:n], r: &st.wire}
	limit := st.d.lim.MaxDecodedBytes
	window := int64(zstdPooledWindow) // unreadable header: the decoder says what is wrong
	var h zstd.Header
	if err := h.Decode(st.zhead[:n]); err == nil {
		switch {
		case h.Skippable: // the next frame's header is further on: allow any window
			window = limit
		case h.SingleSegment && h.FrameContentSize > uint64(limit):
			return nil, body.Errorf(apierror.DecodedTooLarge,
				"request body exceeds the limit of %d bytes after decompression (its zstd frame holds %d)", limit, h.FrameContentSize)
		case h.SingleSegment:
			window = int64(max(h.FrameContentSize, zstd.MinWindowSize))
		default:
			window = int64(min(h.WindowSize, uint64(limit)+1))
		}
	}
	st.zsWindow = max(window, zstdPooledWindow)
	if window > limit {
		return nil, st.windowTooLarge()
	}
	zs := st.zs
	if window <= zstdPooledWindow {
		if zs == nil {
			st.zs = newZstd(zstdPooledWindow)
			zs = st.zs
		}
	} else {
		if err := st.charge(zstdRing(window)); err != nil {
			return nil, err
		}
		st.zsOwn = newZstd(window)
		zs = st.zsOwn
	}
	if err := zs.Reset(&st.zin); err != nil {
		return nil, st.ReadError(err)
	}
	return zs, nil
}

func (st *state) windowTooLarge() *body.Error {
	return body.Errorf(apierror.DecodedTooLarge,
		"zstd frame needs a window over %d bytes (the decoded limit, or what the body's first frame needs)", st.zsWindow)
}

// prefixReader reads head, then r.
type prefixReader struct {
	head []byte
	r    io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.head) > 0 {
		n := copy(b, p.head)
		p.head = p.head[n:]
		return n, nil
	}
	return p.r.Read(b)
}
