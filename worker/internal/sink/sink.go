package sink

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/objkey"
	"github.com/sluice-ingest/sluice/worker/internal/batch"
)

// ObjectPutter is the only S3 call the sink makes. Tests pass the real client
// against a real S3 server; fault tests wrap it.
type ObjectPutter interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Object metadata keys (S3 returns them as x-amz-meta-*).
const (
	MetaEventCount = "sluice-event-count"
	MetaFirstSeq   = "sluice-first-seq"
	MetaLastSeq    = "sluice-last-seq"
)

// Config says where and how objects are written.
type Config struct {
	Bucket      string
	Prefix      string
	Compression string // gzip, zstd or none
}

// Sink encodes and uploads batches.
type Sink struct {
	s3  ObjectPutter
	cfg Config
	ext string
}

// New returns a Sink writing to cfg.Bucket through client.
func New(client ObjectPutter, cfg Config) (*Sink, error) {
	ext, err := objkey.ExtFor(cfg.Compression)
	if err != nil {
		return nil, err
	}
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("sink: bucket is required")
	}
	return &Sink{s3: client, cfg: cfg, ext: ext}, nil
}

// Object is an encoded batch, ready to upload.
type Object struct {
	Key      string
	Body     []byte
	Events   int
	Metadata map[string]string
}

// Encode writes a batch's events in the line format, compressed.
func (s *Sink) Encode(b *batch.Batch) (Object, error) {
	var buf bytes.Buffer
	buf.Grow(int(b.Bytes/4) + 4096)
	w, err := s.compressor(&buf)
	if err != nil {
		return Object{}, err
	}
	line := make([]byte, 0, 4096)
	events := 0
	for _, it := range b.Items {
		err := envelope.EachEvent(it.Body, func(i int, ev []byte) error {
			line = envelope.AppendLine(line[:0], it.Meta, i, ev)
			events++
			_, err := w.Write(line)
			return err
		})
		if err != nil {
			return Object{}, fmt.Errorf("encode batch %d-%d: %w", b.FirstSeq, b.LastSeq, err)
		}
	}
	if err := w.Close(); err != nil {
		return Object{}, fmt.Errorf("compress batch %d-%d: %w", b.FirstSeq, b.LastSeq, err)
	}
	key := objkey.Key{Prefix: s.cfg.Prefix, Tenant: b.Tenant, Hour: b.Hour, FirstSeq: b.FirstSeq, LastSeq: b.LastSeq, Ext: s.ext}
	return Object{
		Key:    key.String(),
		Body:   buf.Bytes(),
		Events: events,
		Metadata: map[string]string{
			MetaEventCount: strconv.Itoa(events),
			MetaFirstSeq:   strconv.FormatUint(b.FirstSeq, 10),
			MetaLastSeq:    strconv.FormatUint(b.LastSeq, 10),
		},
	}, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func (s *Sink) compressor(w io.Writer) (io.WriteCloser, error) {
	switch s.cfg.Compression {
	case "gzip":
		return gzip.NewWriterLevel(w, gzip.DefaultCompression)
	case "zstd":
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
	}
	return nopCloser{w}, nil
}

// Put uploads obj. A nil error means the object is stored.
func (s *Sink) Put(ctx context.Context, obj Object) error {
	_, err := s.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.cfg.Bucket),
		Key:           aws.String(obj.Key),
		Body:          bytes.NewReader(obj.Body),
		ContentLength: aws.Int64(int64(len(obj.Body))),
		ContentType:   aws.String("application/x-ndjson"),
		Metadata:      obj.Metadata,
	})
	if err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", s.cfg.Bucket, obj.Key, err)
	}
	return nil
}
