package sink

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"

	"github.com/parquet-go/parquet-go/compress"

	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/objkey"
	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// Object formats (Config.Format).
const (
	FormatNDJSON  = "ndjson"
	FormatParquet = "parquet"
)

// encoder writes the body of one object, event by event, in the order the
// events are given. An encoder must give the same bytes for the same events:
// no clock, no map order, no randomness.
type encoder interface {
	// add writes event number index of the request m (one request of a
	// coalesced message: envelope.Meta.Request); line is the event's
	// NDJSON line (envelope.AppendLine), which the encoder must not keep.
	add(m envelope.Meta, index int, event, line []byte) error
	// finish completes the body.
	finish() error
}

// format is what a Config.Format decides: the key's extension, the
// object's content type and its encoder.
type format struct {
	ext         string
	contentType string
	// encoder returns an encoder writing into buf, and a func that gives
	// its buffers back once the encoder finished (or failed).
	encoder func(s *Sink, buf *bytes.Buffer) (encoder, func())
	// codec is Parquet's page codec, one for the sink, so that its pool of
	// compressors serves every object.
	codec compress.Codec
}

// formatFor resolves a format and compression name, each empty for its
// default: ndjson, compressed with gzip; parquet, compressed with zstd.
func formatFor(name, compression string) (format, string, error) {
	switch name {
	case "", FormatNDJSON:
		if compression == "" {
			compression = "gzip"
		}
		ext, err := objkey.ExtFor(compression)
		if err != nil {
			return format{}, "", err
		}
		return format{ext: ext, contentType: "application/x-ndjson", encoder: newNDJSONEncoder}, compression, nil
	case FormatParquet:
		if compression == "" {
			compression = "zstd"
		}
		codec, err := parquetCodec(compression)
		if err != nil {
			return format{}, "", err
		}
		return format{ext: objkey.ExtParquet, contentType: "application/vnd.apache.parquet", encoder: newParquetEncoder, codec: codec}, compression, nil
	}
	return format{}, "", fmt.Errorf("unknown format %q (want %s or %s)", name, FormatNDJSON, FormatParquet)
}

// Encode writes an object's events in the sink's format, in stream sequence
// order, so the same messages always give the same bytes. It sorts b.Items
// by sequence, and writes a message held twice (redelivered while in the
// object) once. The content digest in the metadata is of the events' NDJSON
// lines whatever the format and compression.
func (s *Sink) Encode(b *object.Object) (Object, error) {
	slices.SortFunc(b.Items, func(x, y object.Item) int {
		switch {
		case x.Seq < y.Seq:
			return -1
		case x.Seq > y.Seq:
			return 1
		}
		return 0
	})
	var buf bytes.Buffer
	buf.Grow(int(b.Bytes/4) + 4096)
	enc, release := s.format.encoder(s, &buf)
	defer release()
	line := make([]byte, 0, 4096)
	events := 0
	seqs, content := sha256.New(), sha256.New()
	for i, it := range b.Items {
		if i > 0 && it.Seq == b.Items[i-1].Seq {
			continue // delivered twice while held (keep-alives lost): write it once
		}
		seqs.Write(binary.BigEndian.AppendUint64(line[:0], it.Seq))
		// Each event keeps its own request's batch id and received_at, in
		// a coalesced message too.
		err := it.Meta.EachRequestEvent(it.Body, func(req envelope.Meta, i int, ev []byte) error {
			line = envelope.AppendLine(line[:0], req, i, ev)
			events++
			content.Write(line)
			return enc.add(req, i, ev, line)
		})
		if err != nil {
			return Object{}, fmt.Errorf("encode object %d-%d: %w", b.FirstSeq, b.LastSeq, err)
		}
	}
	if err := enc.finish(); err != nil {
		return Object{}, fmt.Errorf("finish object %d-%d: %w", b.FirstSeq, b.LastSeq, err)
	}
	key := objkey.Key{Prefix: s.cfg.Prefix, Tenant: b.Tenant, Hour: b.Hour, FirstSeq: b.FirstSeq, LastSeq: b.LastSeq, Ext: s.format.ext}
	streamKey := key
	streamKey.Stream = b.Stream
	return Object{
		Key:       key.String(),
		StreamKey: streamKey.String(),
		Body:      buf.Bytes(),
		Events:    events,
		Metadata: map[string]string{
			MetaEventCount:    strconv.Itoa(events),
			MetaFirstSeq:      strconv.FormatUint(b.FirstSeq, 10),
			MetaLastSeq:       strconv.FormatUint(b.LastSeq, 10),
			MetaSeqsHash:      hex.EncodeToString(seqs.Sum(nil)),
			MetaStreamCreated: b.Stream,
			MetaContentHash:   hex.EncodeToString(content.Sum(nil)),
		},
	}, nil
}
