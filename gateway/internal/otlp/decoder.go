package otlp

import (
	"errors"
	"io"
	"mime"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"

	"github.com/sluice-ingest/sluice/client/apierror"
	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

// Encoding is an OTLP/HTTP body encoding.
type Encoding int

const (
	JSON     Encoding = iota // application/json: the OTLP JSON encoding
	Protobuf                 // application/x-protobuf
)

// ContentType is the media type of answers in e.
func (e Encoding) ContentType() string {
	if e == Protobuf {
		return "application/x-protobuf"
	}
	return "application/json"
}

// EncodingOf tells the encoding of a request from its Content-Type: the
// two that OTLP/HTTP defines, anything else refused with 415.
func EncodingOf(contentType string) (Encoding, error) {
	switch contentType { // the common spellings, without parsing
	case "application/x-protobuf":
		return Protobuf, nil
	case "application/json":
		return JSON, nil
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err == nil {
		cs, ok := params["charset"]
		switch {
		case mt == "application/x-protobuf":
			return Protobuf, nil
		case mt == "application/json" && (!ok || strings.EqualFold(cs, "utf-8") || strings.EqualFold(cs, "utf8")):
			return JSON, nil
		}
	}
	return JSON, body.Errorf(apierror.UnsupportedMediaType,
		"Content-Type %q is not accepted on /v1/logs; send application/x-protobuf or application/json", contentType)
}

// Batch is a decoded request. It belongs to the Decoder's pool: call
// Release once Body is no longer needed.
type Batch struct {
	// Body holds the accepted records' events as NDJSON, one per line.
	Body []byte
	// Events is the number of events in Body; Rejected the number of
	// records refused, Reason why the first of them was.
	Events   int
	Rejected int
	Reason   string
	st       *state
}

// Release returns the batch's buffers for reuse.
func (b *Batch) Release() { b.st.d.put(b.st) }

// state is one decoding's buffers; the protobuf translated from a JSON
// body is tr.out.
type state struct {
	d     *Decoder
	batch Batch
	body  []byte // the decoded request body
	gz    *gzip.Reader
	tr    translator
	m     mapper
	acct  account
}

// Decoder decodes OTLP logs requests within the limits of its Budget, as
// they are at each request, and charges it. It is safe for concurrent use
// and reuses its buffers.
type Decoder struct {
	budget *body.Budget
	pool   sync.Pool // of *state
}

// NewDecoder returns a Decoder of the Budget b.
func NewDecoder(b *body.Budget) *Decoder {
	d := &Decoder{budget: b}
	d.pool.New = func() any {
		st := &state{d: d}
		st.acct = account{budget: b, bufs: [6]*[]byte{&st.body, &st.tr.out, &st.m.out.b, &st.m.res.b, &st.m.scope.b, &st.tr.scratch}}
		return st
	}
	return d
}

func (d *Decoder) put(st *state) {
	st.batch = Batch{}
	st.acct.release()
	for _, b := range st.acct.bufs {
		if cap(*b) > maxPooled {
			*b = nil
		}
		*b = (*b)[:0]
	}
	st.tr.lex = body.Lexer{} // drop the reference to the request body
	d.pool.Put(st)
}

// Decode reads a request body of encoding enc with the given
// Content-Encoding (gzip or none) and maps its records. Every error it
// returns is a *body.Error; records refused one by one are counted in the
// Batch instead.
func (d *Decoder) Decode(r io.Reader, enc Encoding, contentEncoding string) (*Batch, error) {
	st := d.pool.Get().(*state)
	if err := st.decode(r, enc, contentEncoding); err != nil {
		d.put(st)
		return nil, err
	}
	st.batch = Batch{Body: st.m.out.b, Events: st.m.accepted, Rejected: st.m.rejected, Reason: st.m.reason, st: st}
	return &st.batch, nil
}

func (st *state) decode(r io.Reader, enc Encoding, contentEncoding string) error {
	lim := st.d.budget.Limits()
	if err := st.read(r, contentEncoding, lim); err != nil {
		return err
	}
	wire := st.body
	if enc == JSON {
		if err := st.tr.fromJSON(st.body, lim, &st.acct); err != nil {
			return err
		}
		wire = st.tr.out
	}
	st.m.reset(lim, &st.acct)
	// Events are about twice as large as the protobuf they come from:
	// room for that up front saves growing the output step by step.
	st.m.out.b = slices.Grow(st.m.out.b, int(min(2*int64(len(wire)), lim.MaxDecodedBytes)))
	if err := st.acct.sync(); err != nil {
		return err
	}
	if err := st.m.mapRequest(wire); err != nil {
		return err
	}
	if st.m.accepted == 0 && st.m.rejected > 0 {
		return malformed("every log record was refused; the first because %s", st.m.reason)
	}
	return nil
}

// read reads the whole decoded body into st.body: the wire bytes at most
// MaxBodyBytes, decompressed at most MaxDecodedBytes. The buffer grows
// with what arrives, never with what a header announces.
func (st *state) read(r io.Reader, contentEncoding string, lim body.Limits) error {
	wire := body.NewLimitReader(r, lim.MaxBodyBytes, true)
	src, what := io.Reader(&wire), ""
	switch ce := strings.TrimSpace(contentEncoding); {
	case ce == "" || strings.EqualFold(ce, "identity"):
	case strings.EqualFold(ce, "gzip") || strings.EqualFold(ce, "x-gzip"):
		if st.gz == nil {
			st.gz = new(gzip.Reader)
		}
		if err := st.gz.Reset(&wire); err != nil {
			if err == io.EOF {
				return body.ErrEmpty
			}
			return readError(err, "gzip ", &wire)
		}
		src, what = st.gz, "gzip "
	default:
		return body.Errorf(apierror.UnsupportedEncoding,
			"Content-Encoding %q is not accepted on /v1/logs; send gzip or identity", ce)
	}
	plain := body.NewLimitReader(src, lim.MaxDecodedBytes, false)
	b := st.body[:0]
	if cap(b) == 0 {
		b = make([]byte, 0, 16<<10)
	}
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := plain.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		st.body = b
		if err := st.acct.sync(); err != nil {
			return err
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			st.body = b
			return readError(err, what, &wire, &plain)
		}
	}
	st.body = b
	return nil
}

// readError maps a failure to read or decompress (what: "gzip ") the
// body: the failure that stuck in one of the readers (the wire's first:
// its limit, or the client's read error), else err.
func readError(err error, what string, readers ...*body.LimitReader) *body.Error {
	for _, r := range readers {
		if e := r.Err(); e != nil {
			return e
		}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return malformed("the %sbody is truncated", what)
	}
	return malformed("reading the %sbody: %v", what, err)
}
