package objkey

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Extensions: NDJSON by compression, and Parquet, which compresses inside
// the file and so has one extension whatever its codec.
const (
	ExtGzip    = ".ndjson.gz"
	ExtZstd    = ".ndjson.zst"
	ExtNone    = ".ndjson"
	ExtParquet = ".parquet"
)

// ErrMalformed is returned by Parse for a key that does not follow the contract.
var ErrMalformed = errors.New("malformed object key")

// Key is one object's identity: its partition and the range of stream
// sequences it holds. The same Key always formats to the same string, so a
// retried upload of the same batch finds its own object.
type Key struct {
	Prefix   string
	Tenant   string
	Hour     time.Time // truncated to the hour, UTC
	FirstSeq uint64
	LastSeq  uint64
	// Stream is empty for the plain key. It is the StreamTag of the
	// stream incarnation the batch came from when the plain key already
	// holds an object of another incarnation (the stream was deleted and
	// recreated, so its sequences started again at 1).
	Stream string
	Ext    string // ExtGzip, ExtZstd, ExtNone or ExtParquet
}

// streamTagLayout formats a stream's creation time in a key: UTC, fixed
// width, nanoseconds, no characters that need escaping in a URL.
const streamTagLayout = "20060102T150405.000000000Z"

// StreamTag is how a stream incarnation, its creation time, is written in
// keys and object metadata.
func StreamTag(created time.Time) string { return created.UTC().Format(streamTagLayout) }

// seqWidth zero-pads sequences so lexical listing order is stream order.
const seqWidth = 20

// String formats the key.
func (k Key) String() string {
	h := k.Hour.UTC()
	var b strings.Builder
	if p := strings.Trim(k.Prefix, "/"); p != "" {
		b.WriteString(p)
		b.WriteByte('/')
	}
	fmt.Fprintf(&b, "tenant=%s/dt=%s/hour=%02d/%0*d-%0*d",
		k.Tenant, h.Format("2006-01-02"), h.Hour(), seqWidth, k.FirstSeq, seqWidth, k.LastSeq)
	if k.Stream != "" {
		b.WriteByte('-')
		b.WriteString(k.Stream)
	}
	b.WriteString(k.Ext)
	return b.String()
}

// PartitionPrefix is the key prefix of one tenant's hour, for listing.
func PartitionPrefix(prefix, tenant string, hour time.Time) string {
	k := Key{Prefix: prefix, Tenant: tenant, Hour: hour}
	s := k.String()
	return s[:strings.LastIndexByte(s, '/')+1]
}

// ExtFor returns the extension of an NDJSON object for a compression name
// (gzip, zstd, none).
func ExtFor(compression string) (string, error) {
	switch compression {
	case "gzip":
		return ExtGzip, nil
	case "zstd":
		return ExtZstd, nil
	case "none":
		return ExtNone, nil
	}
	return "", fmt.Errorf("unknown compression %q (want gzip, zstd or none)", compression)
}

// Parse reads a key written by Key.String.
func Parse(s string) (Key, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 4 {
		return Key{}, fmt.Errorf("%w: %q", ErrMalformed, s)
	}
	n := len(parts)
	tenant, ok1 := strings.CutPrefix(parts[n-4], "tenant=")
	dt, ok2 := strings.CutPrefix(parts[n-3], "dt=")
	hour, ok3 := strings.CutPrefix(parts[n-2], "hour=")
	if !ok1 || !ok2 || !ok3 || tenant == "" {
		return Key{}, fmt.Errorf("%w: %q", ErrMalformed, s)
	}
	t, err := time.Parse("2006-01-02 15", dt+" "+hour)
	if err != nil {
		return Key{}, fmt.Errorf("%w: %q: %v", ErrMalformed, s, err)
	}
	name := parts[n-1]
	var ext string
	for _, e := range []string{ExtGzip, ExtZstd, ExtNone, ExtParquet} {
		if strings.HasSuffix(name, e) {
			ext = e
			break
		}
	}
	seqs := strings.Split(strings.TrimSuffix(name, ext), "-")
	if ext == "" || len(seqs) < 2 || len(seqs) > 3 {
		return Key{}, fmt.Errorf("%w: %q", ErrMalformed, s)
	}
	first, last := seqs[0], seqs[1]
	k := Key{Prefix: strings.Join(parts[:n-4], "/"), Tenant: tenant, Hour: t, Ext: ext}
	if len(seqs) == 3 {
		created, err := time.Parse(streamTagLayout, seqs[2])
		if err != nil || StreamTag(created) != seqs[2] {
			return Key{}, fmt.Errorf("%w: %q: stream tag %q", ErrMalformed, s, seqs[2])
		}
		k.Stream = seqs[2]
	}
	if k.FirstSeq, err = strconv.ParseUint(first, 10, 64); err != nil {
		return Key{}, fmt.Errorf("%w: %q: first sequence: %v", ErrMalformed, s, err)
	}
	if k.LastSeq, err = strconv.ParseUint(last, 10, 64); err != nil {
		return Key{}, fmt.Errorf("%w: %q: last sequence: %v", ErrMalformed, s, err)
	}
	if k.LastSeq < k.FirstSeq {
		return Key{}, fmt.Errorf("%w: %q: last sequence before first", ErrMalformed, s)
	}
	return k, nil
}
