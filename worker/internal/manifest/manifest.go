package manifest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/sluice-ingest/sluice/pkg/objkey"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

// Manifest is the content of a _manifest.json: every object of a tenant's
// hour and the hour's totals.
type Manifest struct {
	Tenant string `json:"tenant"`
	Dt     string `json:"dt"`   // YYYY-MM-DD
	Hour   string `json:"hour"` // HH
	// Events and Bytes are the totals over Objects.
	Events  int      `json:"events"`
	Bytes   int64    `json:"bytes"`
	Objects []Object `json:"objects"`
	// Amends is the key of the manifest this one replaces; empty in the
	// first.
	Amends    string    `json:"amends,omitempty"`
	WrittenAt time.Time `json:"written_at"`
}

// Object is one data object of the hour, from its key and metadata.
type Object struct {
	Key      string `json:"key"`
	Events   int    `json:"events"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	Bytes    int64  `json:"bytes"` // stored (compressed) size
	// SHA256 is the object's sluice-content-sha256: the hex SHA-256 of its
	// uncompressed lines.
	SHA256 string `json:"sha256"`
}

// Client is the S3 calls the manifest writer makes.
type Client interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Writer writes the manifests of one bucket and prefix.
type Writer struct {
	S3     Client
	Bucket string
	Prefix string
}

// Name is the key name of a tenant-hour's first manifest; amendment n
// (from 1) is _manifest-<n>.json.
const Name = "_manifest.json"

func manifestName(n int) string {
	if n == 0 {
		return Name
	}
	return "_manifest-" + strconv.Itoa(n) + ".json"
}

// manifestNumber is n for a key ending in manifestName(n).
func manifestNumber(key string) (int, bool) {
	base := key[strings.LastIndexByte(key, '/')+1:]
	if base == Name {
		return 0, true
	}
	tok, ok := strings.CutPrefix(base, "_manifest-")
	if !ok {
		return 0, false
	}
	tok, ok = strings.CutSuffix(tok, ".json")
	n, err := strconv.Atoi(tok)
	return n, ok && err == nil && n > 0
}

// Write writes the manifest of tenant's hour, unless the latest manifest
// already lists exactly the objects stored now: the first as _manifest.json,
// each later one (objects stored after a manifest) as _manifest-<n>.json
// naming the one it amends. Every manifest is written once (If-None-Match).
// It returns the key written, or "" when there was nothing to write (no
// object, or no change).
func (w *Writer) Write(ctx context.Context, tenant string, hour time.Time, now time.Time) (string, error) {
	prefix := objkey.PartitionPrefix(w.Prefix, tenant, hour)
	objs, latest, latestN, err := w.list(ctx, prefix)
	if err != nil || len(objs) == 0 {
		return "", err
	}
	h := hour.UTC()
	m := Manifest{Tenant: tenant, Dt: h.Format("2006-01-02"), Hour: h.Format("15"), WrittenAt: now.UTC()}
	for _, o := range objs {
		if err := w.describe(ctx, &o); err != nil {
			return "", err
		}
		m.Objects = append(m.Objects, o)
		m.Events += o.Events
		m.Bytes += o.Bytes
	}
	n := 0
	if latest != "" {
		prev, err := w.read(ctx, latest)
		if err != nil {
			return "", err
		}
		if sameObjects(prev.Objects, m.Objects) {
			return "", nil
		}
		m.Amends, n = latest, latestN+1
	}
	key := prefix + manifestName(n)
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode manifest %s: %w", key, err)
	}
	_, err = w.S3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(w.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String("application/json"),
		IfNoneMatch: aws.String("*"),
	})
	if errorCode(err) == "PreconditionFailed" {
		// Written meanwhile (the reader of another consumer of the hour,
		// or a former owner of the partition): the next round compares
		// with it.
		return "", fmt.Errorf("put manifest %s: %w", key, ErrWrittenMeanwhile)
	}
	if err != nil {
		return "", fmt.Errorf("put manifest %s: %w", key, err)
	}
	return key, nil
}

// ErrWrittenMeanwhile means another worker wrote the manifest's key first.
var ErrWrittenMeanwhile = errors.New("manifest written meanwhile")

// list returns the data objects under prefix, in key order, with their
// sizes, and the latest manifest's key and number ("" when none).
func (w *Writer) list(ctx context.Context, prefix string) (objs []Object, latest string, latestN int, err error) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(w.Bucket), Prefix: aws.String(prefix)}
	for {
		out, err := w.S3.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, "", 0, fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, o := range out.Contents {
			key := aws.ToString(o.Key)
			if n, ok := manifestNumber(key); ok {
				if latest == "" || n > latestN {
					latest, latestN = key, n
				}
				continue
			}
			if k, err := objkey.Parse(key); err == nil {
				objs = append(objs, Object{Key: key, FirstSeq: k.FirstSeq, LastSeq: k.LastSeq, Bytes: aws.ToInt64(o.Size)})
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return objs, latest, latestN, nil
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}

// describe reads an object's event count and content digest.
func (w *Writer) describe(ctx context.Context, o *Object) error {
	out, err := w.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(w.Bucket), Key: aws.String(o.Key)})
	if err != nil {
		return fmt.Errorf("head %s: %w", o.Key, err)
	}
	n, err := strconv.Atoi(out.Metadata[sink.MetaEventCount])
	if err != nil {
		return fmt.Errorf("%s: metadata %s=%q: %w", o.Key, sink.MetaEventCount, out.Metadata[sink.MetaEventCount], err)
	}
	o.Events, o.SHA256 = n, out.Metadata[sink.MetaContentHash]
	return nil
}

func (w *Writer) read(ctx context.Context, key string) (Manifest, error) {
	out, err := w.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(w.Bucket), Key: aws.String(key)})
	if err != nil {
		return Manifest{}, fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return Manifest{}, fmt.Errorf("read %s: %w", key, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("decode %s: %w", key, err)
	}
	return m, nil
}

func sameObjects(a, b []Object) bool {
	return slices.EqualFunc(a, b, func(x, y Object) bool { return x == y })
}

func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}
