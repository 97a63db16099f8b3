package decode

import (
	"io"
	"mime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sluice-ingest/sluice/client/apierror"
)

// Limits bound what one request may carry, and what all requests being
// decoded may hold. A zero field takes its default.
type Limits struct {
	MaxBodyBytes    int64 // on the wire
	MaxDecodedBytes int64 // after decompression
	// MaxInflightBytes bounds the memory all decodings in flight hold
	// beyond their fixed part (see FixedBytesPerRequest): output buffers
	// and zstd windows. A body that would pass it is refused with ErrBusy.
	MaxInflightBytes int64
	MaxEvents        int
	// MaxDepth bounds the nesting of objects and arrays, counted from the
	// body's root: the {"events":[...]} wrapper itself takes two levels.
	MaxDepth int
}

// Defaults of Limits.
const (
	DefaultMaxBodyBytes     = 1 << 20
	DefaultMaxDecodedBytes  = 4 << 20
	DefaultMaxInflightBytes = 256 << 20
	DefaultMaxEvents        = 10000
	DefaultMaxDepth         = 64
)

func (l Limits) withDefaults() Limits {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxDecodedBytes <= 0 {
		l.MaxDecodedBytes = DefaultMaxDecodedBytes
	}
	if l.MaxInflightBytes <= 0 {
		l.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if l.MaxEvents <= 0 {
		l.MaxEvents = DefaultMaxEvents
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	return l
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
	lim Limits
	// maxDecoded is the decoded limit in force: lim.MaxDecodedBytes, or
	// less when the broker takes smaller messages (CapDecodedBytes).
	maxDecoded atomic.Int64
	budget     budget
	pool       sync.Pool // of *state
}

// NewDecoder returns a Decoder enforcing lim.
func NewDecoder(lim Limits) *Decoder {
	d := &Decoder{lim: lim.withDefaults()}
	d.maxDecoded.Store(d.lim.MaxDecodedBytes)
	d.budget.limit = d.lim.MaxInflightBytes
	d.pool.New = func() any { return newState(d) }
	return d
}

// Limits are the limits d enforces, defaults filled in, with the decoded
// limit in force.
func (d *Decoder) Limits() Limits {
	l := d.lim
	l.MaxDecodedBytes = d.maxDecoded.Load()
	return l
}

// CapDecodedBytes sets the decoded limit in force to n (the largest message
// the broker takes, less room for headers) when that is below the
// configured one, else back to the configured one.
func (d *Decoder) CapDecodedBytes(n int64) {
	d.maxDecoded.Store(max(1, min(n, d.lim.MaxDecodedBytes)))
}

// Largest output buffer kept for reuse; larger ones are charged to the
// budget while in use and left to the GC afterwards, so a burst of big
// requests does not pin memory.
const maxPooledOut = 64 << 10

// FixedBytesPerRequest is what one decoding may hold outside the budget,
// and a pooled state keeps: the input window, an output buffer of up to
// maxPooledOut, a gzip reader (its 32 KiB window and tables) and a zstd
// decoder for windows up to zstdPooledWindow, rounded up.
const FixedBytesPerRequest = 384 << 10

// MaxBytesPerRequest is the most one decoding can charge to the budget:
// its output at the decoded limit while the half-size buffer before it is
// copied, and a zstd window of that size.
func MaxBytesPerRequest(maxDecoded int64) int64 {
	return maxDecoded + 1 + maxDecoded/2 + 1 + zstdRing(maxDecoded)
}

func (d *Decoder) put(st *state) {
	d.budget.give(st.charged)
	st.charged = 0
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
		return false, errorf(apierror.UnsupportedMediaType, "cannot parse Content-Type %q", ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return false, errorf(apierror.UnsupportedMediaType, "charset %q is not accepted; send UTF-8", cs)
	}
	switch mt {
	case "application/json", "text/plain":
		return false, nil
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonl":
		return true, nil
	}
	return false, errorf(apierror.UnsupportedMediaType,
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
	return identity, errorf(apierror.UnsupportedEncoding,
		"Content-Encoding %q is not accepted; send gzip, zstd or identity", ce)
}
