package decode

import (
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

// readBufSize is the window of the decoded body the lexer holds at once.
const readBufSize = 16 << 10

// state is one decoding: where the body comes from (the limits and the
// decompressor), the lexer reading it (whose Hooks it is), the compact
// output, and what the body shapes note.
type state struct {
	d     *Decoder
	batch Batch
	body.Lexer
	in  []byte // the lexer's window
	out []byte
	pos position
	envelope

	wire, dec body.LimitReader
	enc       contentEncoding
	gz        *gzip.Reader
	// zs is the pooled zstd decoder (windows up to zstdPooledWindow);
	// zsOwn one made for this request's larger window, zsWindow the
	// largest window the one in use takes. zhead holds the first frame's
	// header, read before the decoder is chosen, and zin replays it.
	zs       *zstd.Decoder
	zsOwn    *zstd.Decoder
	zsWindow int64
	zhead    [zstd.HeaderMaxSize]byte
	zin      prefixReader
	// charged is what this decoding holds of the Decoder's budget.
	charged int64

	events int
}

func newState(d *Decoder) *state {
	st := &state{d: d}
	st.in = make([]byte, readBufSize)
	return st
}

func (st *state) reset() {
	if st.zs != nil {
		_ = st.zs.Reset(nil) // drop the reference to the request body
	}
	if st.zsOwn != nil {
		st.zsOwn.Close()
	}
	*st = state{d: st.d, gz: st.gz, zs: st.zs, in: st.in, out: st.out[:0],
		envelope: envelope{spans: st.spans[:0]}}
}

func (st *state) decode(r io.Reader, enc contentEncoding, ndjson bool) error {
	src, err := st.source(r, enc)
	if err != nil {
		return err
	}
	st.Lexer.Reset(st.in, src, st)
	st.Newlines, st.MaxDepth, st.pos.index = ndjson, st.d.lim.MaxDepth, -1
	if ndjson {
		return st.ndjsonBody()
	}
	return st.jsonBody()
}

// source returns the decoded body: the wire bytes, limited, through the
// decompressor, limited again.
func (st *state) source(r io.Reader, enc contentEncoding) (io.Reader, error) {
	st.enc = enc
	st.wire = body.NewLimitReader(r, st.d.lim.MaxBodyBytes, true)
	var plain io.Reader = &st.wire
	switch enc {
	case gzipped:
		if st.gz == nil {
			st.gz = new(gzip.Reader)
		}
		if err := st.gz.Reset(&st.wire); err != nil {
			if err == io.EOF {
				return nil, body.ErrEmpty
			}
			return nil, st.ReadError(err)
		}
		plain = st.gz
	case zstded:
		zs, err := st.zstdSource()
		if err != nil {
			return nil, err
		}
		plain = zs
	}
	st.dec = body.NewLimitReader(plain, st.d.budget.MaxDecodedBytes(), false)
	return &st.dec, nil
}
