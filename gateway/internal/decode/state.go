package decode

import (
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// state is one decoding: where the body comes from (the limits and the
// decompressor), the grammar reading it, and what the body shapes note.
type state struct {
	d     *Decoder
	batch Batch
	parser
	envelope

	wire, dec LimitReader
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
	st.hooks = st
	return st
}

func (st *state) reset() {
	if st.zs != nil {
		_ = st.zs.Reset(nil) // drop the reference to the request body
	}
	if st.zsOwn != nil {
		st.zsOwn.Close()
	}
	*st = state{d: st.d, gz: st.gz, zs: st.zs,
		parser:   parser{scanner: scanner{in: st.in, out: st.out[:0], hooks: st}},
		envelope: envelope{spans: st.spans[:0]}}
}

func (st *state) decode(r io.Reader, enc contentEncoding, ndjson bool) error {
	st.newlines, st.pos.index, st.maxDepth = ndjson, -1, st.d.lim.MaxDepth
	if err := st.source(r, enc); err != nil {
		return err
	}
	if ndjson {
		return st.ndjsonBody()
	}
	return st.jsonBody()
}

// source sets st.src to the decoded body: the wire bytes, limited, through
// the decompressor, limited again.
func (st *state) source(r io.Reader, enc contentEncoding) error {
	st.enc = enc
	st.wire = NewLimitReader(r, st.d.lim.MaxBodyBytes, true)
	var plain io.Reader = &st.wire
	switch enc {
	case gzipped:
		if st.gz == nil {
			st.gz = new(gzip.Reader)
		}
		if err := st.gz.Reset(&st.wire); err != nil {
			if err == io.EOF {
				return errEmpty
			}
			return st.readError(err)
		}
		plain = st.gz
	case zstded:
		zs, err := st.zstdSource()
		if err != nil {
			return err
		}
		plain = zs
	}
	st.dec = NewLimitReader(plain, st.d.maxDecoded.Load(), false)
	st.src = &st.dec
	return nil
}
