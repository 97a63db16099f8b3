package sink

import (
	"bytes"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/sluice-ingest/sluice/pkg/envelope"
)

// ndjsonEncoder writes the NDJSON lines through the object's compression.
type ndjsonEncoder struct{ w io.WriteCloser }

func newNDJSONEncoder(s *Sink, buf *bytes.Buffer) (encoder, func()) {
	w, release := s.compressor(buf)
	return ndjsonEncoder{w}, release
}

func (e ndjsonEncoder) add(_ envelope.Meta, _ int, _, line []byte) error {
	_, err := e.w.Write(line)
	return err
}

func (e ndjsonEncoder) finish() error { return e.w.Close() }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// compressor returns a writer compressing into w, and a func that gives
// the compressor back to its pool once the writer is closed.
func (s *Sink) compressor(w io.Writer) (io.WriteCloser, func()) {
	switch s.cfg.Compression {
	case "gzip":
		gz, _ := s.gz.Get().(*gzip.Writer)
		if gz == nil {
			gz, _ = gzip.NewWriterLevel(w, gzip.DefaultCompression) // the level is valid
		} else {
			gz.Reset(w)
		}
		return gz, func() { s.gz.Put(gz) }
	case "zstd":
		zw, _ := s.zstd.Get().(*zstd.Encoder)
		if zw == nil {
			zw, _ = zstd.NewWriter(w, zstd.WithEncoderConcurrency(1)) // the options are valid
		} else {
			zw.Reset(w)
		}
		return zw, func() { s.zstd.Put(zw) }
	}
	return nopCloser{w}, func() {}
}
