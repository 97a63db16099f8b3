package decode

import (
	"io"
	"mime"
	"strings"
	"sync"

	"github.com/sluice-ingest/sluice/client/apierror"
	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

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

// Decoder decodes request bodies within the limits of its Budget, and
// charges it. It is safe for concurrent use and reuses its buffers and
// decompressors.
type Decoder struct {
	budget *body.Budget
	lim    body.Limits // as configured
	pool   sync.Pool   // of *state
}

// NewDecoder returns a Decoder enforcing the limits in force of b.
func NewDecoder(b *body.Budget) *Decoder {
	d := &Decoder{budget: b, lim: b.Configured()}
	d.pool.New = func() any { return newState(d) }
	return d
}

// Largest output buffer kept for reuse; larger ones are charged to the
// budget while in use and left to the GC afterwards, so a burst of big
// requests does not pin memory.
const maxPooledOut = 64 << 10

// MaxBytesPerRequest is the most one decoding can charge to the budget:
// its output at the decoded limit while the half-size buffer before it is
// copied, and a zstd window of that size.
func MaxBytesPerRequest(maxDecoded int64) int64 {
	return maxDecoded + 1 + maxDecoded/2 + 1 + zstdRing(maxDecoded)
}

func (d *Decoder) put(st *state) {
	d.budget.Unreserve(st.charged)
	st.charged = 0
	st.reset()
	if cap(st.out) > maxPooledOut {
		st.out = nil
	}
	d.pool.Put(st)
}

// Decode reads a request body of the given Content-Type and
// Content-Encoding. Every error it returns is a *body.Error.
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
		return false, body.Errorf(apierror.UnsupportedMediaType, "cannot parse Content-Type %q", ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return false, body.Errorf(apierror.UnsupportedMediaType, "charset %q is not accepted; send UTF-8", cs)
	}
	switch mt {
	case "application/json", "text/plain":
		return false, nil
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonl":
		return true, nil
	}
	return false, body.Errorf(apierror.UnsupportedMediaType,
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
	return identity, body.Errorf(apierror.UnsupportedEncoding,
		"Content-Encoding %q is not accepted; send gzip, zstd or identity", ce)
}
