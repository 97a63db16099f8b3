//lint:file-ignore SA1019 feature/s3/manager is deprecated in favour of feature/s3/transfermanager, which is still v0 (its API may change); move when it reaches v1.

package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/sluice-ingest/sluice/pkg/objkey"
)

// Client is every S3 call the sink makes: the multipart uploader's calls,
// HeadObject to check a key that already exists, ListObjectsV2 to find the
// objects of a partition, and ListMultipartUploads to clean up abandoned
// uploads. Tests pass the real client against a real
// S3 server; fault tests wrap it (503s, latency).
type Client interface {
	manager.UploadAPIClient
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	ListMultipartUploads(ctx context.Context, in *s3.ListMultipartUploadsInput, opts ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error)
}

// Object metadata keys (S3 returns them as x-amz-meta-*).
const (
	MetaEventCount = "sluice-event-count"
	MetaFirstSeq   = "sluice-first-seq"
	MetaLastSeq    = "sluice-last-seq"
	// MetaSeqsHash is the hex SHA-256 of the object's stream sequences
	// (sorted, 8 bytes big-endian each): two objects with the same key and
	// count but other messages in between differ here.
	MetaSeqsHash = "sluice-seqs-sha256"
	// MetaStreamCreated is the StreamTag of the stream incarnation the
	// object's messages came from: a stream deleted and recreated numbers its messages
	// from 1 again, so sequences alone do not name messages.
	MetaStreamCreated = "sluice-stream-created"
	// MetaContentHash is the hex SHA-256 of the object's events as
	// uncompressed NDJSON lines, whatever the format and compression: the
	// same messages give the same digest, other messages another.
	MetaContentHash = "sluice-content-sha256"
)

// sameObject are the metadata that must all be present and equal for a
// stored object to be the one being uploaded.
var sameObject = []string{MetaEventCount, MetaFirstSeq, MetaLastSeq, MetaSeqsHash, MetaStreamCreated, MetaContentHash}

// DefaultPartSize is the multipart threshold and part size when Config
// leaves it zero. Objects up to this size are one PutObject.
const DefaultPartSize = 16 << 20

// ErrConflict means the object's key already holds an object of the same
// stream incarnation whose metadata does not match: the same first and
// last sequence, other messages in between. The caller must cut the
// object differently.
var ErrConflict = errors.New("key holds a different object")

// Config says where and how objects are written.
type Config struct {
	Bucket string
	Prefix string
	// Format is ndjson (empty means ndjson) or parquet.
	Format string
	// Compression is gzip, zstd or none: of the whole object for ndjson
	// (and its extension), of the column pages inside the file for
	// parquet. Empty means gzip for ndjson, zstd for parquet.
	Compression string
	// PartSize is the multipart threshold and part size (at least 5 MiB);
	// zero means DefaultPartSize.
	PartSize int64
	// PartConcurrency is the parts of one object uploaded at once; zero
	// means 2.
	PartConcurrency int
}

// Sink encodes and uploads objects.
type Sink struct {
	s3     Client
	up     *manager.Uploader
	cfg    Config
	format format
	gz     sync.Pool // *gzip.Writer
	zstd   sync.Pool // *zstd.Encoder
}

// New returns a Sink writing to cfg.Bucket through client.
func New(client Client, cfg Config) (*Sink, error) {
	f, compression, err := formatFor(cfg.Format, cfg.Compression)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	cfg.Compression = compression
	if cfg.Bucket == "" {
		return nil, errors.New("sink: bucket is required")
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < manager.MinUploadPartSize {
		return nil, fmt.Errorf("sink: part size %d below the S3 minimum of %d", cfg.PartSize, manager.MinUploadPartSize)
	}
	if cfg.PartConcurrency <= 0 {
		cfg.PartConcurrency = 2
	}
	up := manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = cfg.PartSize
		u.Concurrency = cfg.PartConcurrency
		u.LeavePartsOnError = false // the uploader aborts a failed multipart upload
	})
	return &Sink{s3: client, up: up, cfg: cfg, format: f}, nil
}

// Object is an encoded object, ready to upload.
type Object struct {
	Key string
	// StreamKey is Key with the object's stream incarnation in it: where the
	// object goes when Key holds an object of another incarnation, or one
	// written without the incarnation in its metadata.
	StreamKey string
	Body      []byte
	Events    int
	Metadata  map[string]string
}

// Put stores obj, written once with If-None-Match: *, and returns its key.
// On a 412 it reads the stored object's metadata: the same messages mean obj
// is stored; the same incarnation with other messages is ErrConflict; another
// incarnation, or none, sends obj to obj.StreamKey, judged the same way.
// Both keys are functions of the messages, so a retry finds its own object;
// large objects go up in parts. A nil error means the object is stored.
func (s *Sink) Put(ctx context.Context, obj Object) (string, error) {
	err := s.putOnce(ctx, obj, obj.Key)
	if !errors.Is(err, errExists) {
		return obj.Key, err
	}
	stored, err := s.head(ctx, obj.Key)
	if err != nil {
		return obj.Key, err
	}
	if v := stored[MetaStreamCreated]; v != "" && v == obj.Metadata[MetaStreamCreated] {
		return obj.Key, s.compare(obj.Key, stored, obj)
	}
	err = s.putOnce(ctx, obj, obj.StreamKey)
	if !errors.Is(err, errExists) {
		return obj.StreamKey, err
	}
	if stored, err = s.head(ctx, obj.StreamKey); err != nil {
		return obj.StreamKey, err
	}
	return obj.StreamKey, s.compare(obj.StreamKey, stored, obj)
}

// errExists is a 412 on a conditional put: the key holds an object.
var errExists = errors.New("key exists")

// putOnce uploads obj under key unless the key exists (errExists).
func (s *Sink) putOnce(ctx context.Context, obj Object, key string) error {
	_, err := s.up.Upload(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.cfg.Bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(obj.Body),
		ContentLength: aws.Int64(int64(len(obj.Body))),
		ContentType:   aws.String(s.format.contentType),
		Metadata:      obj.Metadata,
		IfNoneMatch:   aws.String("*"),
	})
	if err == nil {
		return nil
	}
	s.abortFailed(ctx, key, err)
	if errorCode(err) == "PreconditionFailed" {
		return errExists
	}
	return fmt.Errorf("put s3://%s/%s: %w", s.cfg.Bucket, key, err)
}

// abortFailed aborts a failed multipart upload when the uploader could not
// (its context had ended), so no parts are left behind.
func (s *Sink) abortFailed(ctx context.Context, key string, err error) {
	var mf manager.MultiUploadFailure
	if !errors.As(err, &mf) || mf.UploadID() == "" || ctx.Err() == nil {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, _ = s.s3.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), UploadId: aws.String(mf.UploadID()),
	})
}

// head reads the metadata of the object stored under key.
func (s *Sink) head(ctx context.Context, key string) (map[string]string, error) {
	out, err := s.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("head s3://%s/%s: %w", s.cfg.Bucket, key, err)
	}
	return out.Metadata, nil
}

// compare returns nil when the metadata stored under key prove it is obj,
// else ErrConflict. A missing field proves nothing.
func (s *Sink) compare(key string, stored map[string]string, obj Object) error {
	for _, k := range sameObject {
		if v := stored[k]; v == "" || v != obj.Metadata[k] {
			return fmt.Errorf("s3://%s/%s: stored %s=%q, object has %q: %w",
				s.cfg.Bucket, key, k, v, obj.Metadata[k], ErrConflict)
		}
	}
	return nil
}

// Stored lists the keys of the objects stored in a tenant's hour (in this
// sink's format and compression), for regathering redelivered messages into
// the object they landed in.
func (s *Sink) Stored(ctx context.Context, tenant string, hour time.Time) ([]objkey.Key, error) {
	in := &s3.ListObjectsV2Input{
		Bucket: aws.String(s.cfg.Bucket),
		Prefix: aws.String(objkey.PartitionPrefix(s.cfg.Prefix, tenant, hour)),
	}
	var keys []objkey.Key
	for {
		out, err := s.s3.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", aws.ToString(in.Prefix), err)
		}
		for _, o := range out.Contents {
			if k, err := objkey.Parse(aws.ToString(o.Key)); err == nil && k.Ext == s.format.ext {
				keys = append(keys, k)
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return keys, nil
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}

// Stored is what a stored object's metadata say about its messages.
type Stored struct {
	Events int
	// Stream is the StreamTag of its stream incarnation; empty for an
	// object written before objects carried it.
	Stream string
}

// StoredObject reads a stored object's event count and stream incarnation
// from its metadata.
func (s *Sink) StoredObject(ctx context.Context, key string) (Stored, error) {
	meta, err := s.head(ctx, key)
	if err != nil {
		return Stored{}, err
	}
	n, err := strconv.Atoi(meta[MetaEventCount])
	if err != nil {
		return Stored{}, fmt.Errorf("%s: metadata %s=%q: %w", key, MetaEventCount, meta[MetaEventCount], err)
	}
	return Stored{Events: n, Stream: meta[MetaStreamCreated]}, nil
}

// AbortStale aborts multipart uploads of Sluice objects under the prefix
// that started more than olderThan ago: uploads of a worker that was killed
// mid-upload. No upload of a live worker takes that long. Only keys that
// follow the object key contract under this prefix are touched, so other
// writers to a shared bucket keep their uploads. It returns how many it
// aborted.
func (s *Sink) AbortStale(ctx context.Context, olderThan time.Duration) (int, error) {
	prefix := strings.Trim(s.cfg.Prefix, "/")
	listPrefix := "tenant="
	if prefix != "" {
		listPrefix = prefix + "/tenant="
	}
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(s.cfg.Bucket), Prefix: aws.String(listPrefix)}
	cutoff := time.Now().Add(-olderThan)
	aborted := 0
	for {
		out, err := s.s3.ListMultipartUploads(ctx, in)
		if err != nil {
			return aborted, fmt.Errorf("list multipart uploads in %s: %w", s.cfg.Bucket, err)
		}
		for _, u := range out.Uploads {
			if u.Initiated == nil || u.Initiated.After(cutoff) {
				continue
			}
			if k, err := objkey.Parse(aws.ToString(u.Key)); err != nil || k.Prefix != prefix {
				continue // not an object of this worker's layout
			}
			if _, err := s.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
				Bucket: aws.String(s.cfg.Bucket), Key: u.Key, UploadId: u.UploadId,
			}); err != nil {
				return aborted, fmt.Errorf("abort multipart upload of %s: %w", aws.ToString(u.Key), err)
			}
			aborted++
		}
		if !aws.ToBool(out.IsTruncated) {
			return aborted, nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// permanentCodes are S3 error codes about the object itself: retrying the
// same upload cannot succeed.
var permanentCodes = []string{"EntityTooLarge", "KeyTooLongError", "MetadataTooLarge", "InvalidStorageClass"}

// Permanent is the one place that decides whether an upload error is worth
// a retry. Only an error about the object itself is permanent; everything
// else (network, 5xx, throttling) may heal and is retried, or is about the
// writer, not the object (Unwritable: credentials, permissions, a missing
// bucket), because the object's messages must not be dropped while an
// operator fixes S3. ErrConflict is not permanent: the caller re-cuts.
func Permanent(err error) bool {
	return slices.Contains(permanentCodes, errorCode(err))
}

func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}
