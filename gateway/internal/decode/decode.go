package decode

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Limits bound what one request may carry. A zero field takes its default.
type Limits struct {
	MaxBodyBytes    int64 // on the wire
	MaxDecodedBytes int64 // after decompression
	MaxEvents       int
	// MaxDepth bounds the nesting of objects and arrays, counted from the
	// body's root: the {"events":[...]} wrapper itself takes two levels.
	MaxDepth int
}

// Defaults of Limits.
const (
	DefaultMaxBodyBytes    = 1 << 20
	DefaultMaxDecodedBytes = 4 << 20
	DefaultMaxEvents       = 10000
	DefaultMaxDepth        = 64
)

func (l Limits) withDefaults() Limits {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxDecodedBytes <= 0 {
		l.MaxDecodedBytes = DefaultMaxDecodedBytes
	}
	if l.MaxEvents <= 0 {
		l.MaxEvents = DefaultMaxEvents
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	return l
}

// Error is a refusal of client input: it maps to Status with a JSON body
// {"error": Code, "message": Message}. Status is always a 4xx.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Batch is a decoded request. It belongs to the Decoder's pool: call Release
// once Body is no longer needed.
type Batch struct {
	// Body holds the events as NDJSON, each event compacted onto one line.
	Body []byte
	// Events is the number of events (lines) in Body.
	Events int
	st     *state
}

// Release returns the batch's buffers for reuse; Body must not be used
// afterwards.
func (b *Batch) Release() { b.st.d.put(b.st) }

// Decoder decodes request bodies within its limits. It is safe for
// concurrent use and reuses its buffers and decompressors.
type Decoder struct {
	lim  Limits
	pool sync.Pool // of *state
}

// NewDecoder returns a Decoder enforcing lim.
func NewDecoder(lim Limits) *Decoder {
	d := &Decoder{lim: lim.withDefaults()}
	d.pool.New = func() any { return &state{d: d, in: make([]byte, readBufSize)} }
	return d
}

// Limits are the limits d enforces, defaults filled in.
func (d *Decoder) Limits() Limits { return d.lim }

// Largest output buffer kept for reuse; larger ones are left to the GC so a
// burst of big requests does not pin memory.
const maxPooledOut = 256 << 10

func (d *Decoder) put(st *state) {
	st.reset()
	if cap(st.out) > maxPooledOut {
		st.out = nil
	}
	d.pool.Put(st)
}

// Decode reads a request body of the given Content-Type and
// Content-Encoding. Every error it returns is an *Error.
func (d *Decoder) Decode(r io.Reader, contentType, contentEncoding string) (*Batch, error) {
	ndjson, err := mediaType(contentType)
	if err != nil {
		return nil, err
	}
	enc, err := encoding(contentEncoding)
	if err != nil {
		return nil, err
	}
	st := d.pool.Get().(*state)
	if err := st.decode(r, enc, ndjson); err != nil {
		d.put(st)
		return nil, err
	}
	st.batch = Batch{Body: st.out, Events: st.events, st: st}
	return &st.batch, nil
}

// mediaType accepts JSON (the default when no Content-Type is sent) and
// NDJSON, in UTF-8.
func mediaType(ct string) (ndjson bool, err error) {
	switch ct { // the common spellings, without parsing
	case "", "application/json", "application/json; charset=utf-8":
		return false, nil
	case "application/x-ndjson":
		return true, nil
	}
	mt, params, perr := mime.ParseMediaType(ct)
	if perr != nil {
		return false, errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "cannot parse Content-Type %q", ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return false, errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "charset %q is not accepted; send UTF-8", cs)
	}
	switch mt {
	case "application/json", "text/plain":
		return false, nil
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonl":
		return true, nil
	}
	return false, errorf(http.StatusUnsupportedMediaType, "unsupported_media_type",
		"Content-Type %q is not accepted; send application/json or application/x-ndjson", mt)
}

type contentEncoding int

const (
	identity contentEncoding = iota
	gzipped
	zstded
)

func (e contentEncoding) String() string {
	return [...]string{"identity", "gzip", "zstd"}[e]
}

func encoding(ce string) (contentEncoding, error) {
	ce = strings.TrimSpace(ce)
	switch {
	case ce == "" || strings.EqualFold(ce, "identity"):
		return identity, nil
	case strings.EqualFold(ce, "gzip") || strings.EqualFold(ce, "x-gzip"):
		return gzipped, nil
	case strings.EqualFold(ce, "zstd"):
		return zstded, nil
	}
	return identity, errorf(http.StatusUnsupportedMediaType, "unsupported_encoding",
		"Content-Encoding %q is not accepted; send gzip, zstd or identity", ce)
}

// zstd decoders decode in the calling goroutine (concurrency 1), keep little
// memory between uses, and refuse frames whose window is larger than this:
// 8 MiB is what the zstd command uses up to level 19.
const zstdMaxWindow = 8 << 20

func newZstd() *zstd.Decoder {
	zs, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(zstdMaxWindow),
	)
	if err != nil {
		panic("zstd decoder options: " + err.Error()) // constant options: a programming error
	}
	return zs
}

// source sets st.src to the decoded body: the wire bytes, limited, through
// the decompressor, limited again.
func (st *state) source(r io.Reader, enc contentEncoding) error {
	st.enc = enc
	st.wire = newLimitReader(r, st.d.lim.MaxBodyBytes, true)
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
		if st.zs == nil {
			st.zs = newZstd()
		}
		if err := st.zs.Reset(&st.wire); err != nil {
			return st.readError(err)
		}
		plain = st.zs
	}
	st.dec = newLimitReader(plain, st.d.lim.MaxDecodedBytes, false)
	st.src = &st.dec
	return nil
}
