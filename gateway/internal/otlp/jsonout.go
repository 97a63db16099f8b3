package otlp

import (
	"encoding/base64"
	"encoding/hex"
	"math"
	"strconv"

	"github.com/sluice-ingest/sluice/client/apierror"
	"github.com/sluice-ingest/sluice/gateway/internal/body"
	"github.com/sluice-ingest/sluice/pkg/jsonx"
)

// jsonOut builds the events' JSON. Every append that can grow it past
// limit checks, so the output never holds much more than limit bytes
// whatever the body asks for.
type jsonOut struct {
	b     []byte
	limit int
	acct  *account // charged for the growth at each check
}

// tooLarge is the refusal of events that map to more than the limit.
func (o *jsonOut) tooLarge() *body.Error {
	return body.Errorf(apierror.DecodedTooLarge,
		"the log records map to more than the limit of %d bytes of events", o.limit)
}

// check fails once the output is over its limit.
func (o *jsonOut) check() error {
	if len(o.b) > o.limit {
		return o.tooLarge()
	}
	return o.acct.sync()
}

func (o *jsonOut) raw(s string) { o.b = append(o.b, s...) }

// key appends ,"name": (the comma unless first).
func (o *jsonOut) key(first bool, name string) {
	if !first {
		o.b = append(o.b, ',')
	}
	o.b = append(o.b, '"')
	o.b = append(o.b, name...)
	o.b = append(o.b, '"', ':')
}

// str appends s as a JSON string. s must be valid UTF-8 (the callers check,
// so that an invalid record is refused rather than altered). A long s is
// escaped a piece at a time, so the output never passes the limit by more
// than a piece's worth of escapes.
func (o *jsonOut) str(s []byte) error {
	if len(o.b)+len(s) > o.limit {
		return o.tooLarge()
	}
	o.b = append(o.b, '"')
	for len(s) > strPiece {
		o.b = jsonx.AppendEscaped(o.b, s[:strPiece], jsonx.Minimal)
		s = s[strPiece:]
		if len(o.b) > o.limit {
			return o.tooLarge()
		}
	}
	o.b = jsonx.AppendEscaped(o.b, s, jsonx.Minimal)
	o.b = append(o.b, '"')
	return o.check()
}

// strPiece is what str escapes at once: 4 KiB, which control characters
// turn into at most 24 KiB.
const strPiece = 4 << 10

// uintStr appends v as a JSON string: the OTLP JSON encoding of 64-bit
// integers.
func (o *jsonOut) uintStr(v uint64) {
	o.b = append(o.b, '"')
	o.b = strconv.AppendUint(o.b, v, 10)
	o.b = append(o.b, '"')
}

func (o *jsonOut) intStr(v int64) {
	o.b = append(o.b, '"')
	o.b = strconv.AppendInt(o.b, v, 10)
	o.b = append(o.b, '"')
}

func (o *jsonOut) uint(v uint64) { o.b = strconv.AppendUint(o.b, v, 10) }
func (o *jsonOut) int(v int64)   { o.b = strconv.AppendInt(o.b, v, 10) }

func (o *jsonOut) bool(v bool) { o.b = strconv.AppendBool(o.b, v) }

// double appends f as a JSON number, or as the strings "NaN", "Infinity"
// and "-Infinity" that the OTLP JSON encoding (protobuf's JSON mapping)
// uses for the values JSON has no number for.
func (o *jsonOut) double(f float64) {
	switch {
	case math.IsNaN(f):
		o.b = append(o.b, `"NaN"`...)
	case math.IsInf(f, 1):
		o.b = append(o.b, `"Infinity"`...)
	case math.IsInf(f, -1):
		o.b = append(o.b, `"-Infinity"`...)
	default:
		o.b = strconv.AppendFloat(o.b, f, 'g', -1, 64)
	}
}

// hex appends b as a lowercase hex string: trace and span ids in OTLP JSON.
func (o *jsonOut) hex(b []byte) {
	o.b = append(o.b, '"')
	o.b = hex.AppendEncode(o.b, b)
	o.b = append(o.b, '"')
}

// base64 appends b as a standard base64 string: other bytes in OTLP JSON.
func (o *jsonOut) base64(b []byte) error {
	if len(o.b)+base64.StdEncoding.EncodedLen(len(b)) > o.limit {
		return o.tooLarge()
	}
	o.b = append(o.b, '"')
	o.b = base64.StdEncoding.AppendEncode(o.b, b)
	o.b = append(o.b, '"')
	return nil
}
