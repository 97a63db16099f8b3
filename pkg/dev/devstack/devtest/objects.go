package devtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/sluice-ingest/sluice/pkg/objkey"
)

// Object is a stored object read back, decompressed.
type Object struct {
	Key      string
	Lines    []string
	Metadata map[string]string
	Size     int64 // stored (compressed) size
}

// ReadObjects lists every object under prefix in bucket and reads each one,
// decompressing by its extension.
func ReadObjects(ctx context.Context, c *s3.Client, bucket, prefix string) ([]Object, error) {
	var out []Object
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			obj, err := readObject(ctx, c, bucket, aws.ToString(o.Key))
			if err != nil {
				return nil, err
			}
			out = append(out, obj)
		}
	}
	return out, nil
}

func readObject(ctx context.Context, c *s3.Client, bucket, key string) (Object, error) {
	res, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return Object{}, fmt.Errorf("get %s: %w", key, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return Object{}, fmt.Errorf("read %s: %w", key, err)
	}
	var plain []byte
	switch {
	case strings.HasSuffix(key, objkey.ExtGzip):
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return Object{}, fmt.Errorf("gunzip %s: %w", key, err)
		}
		if plain, err = io.ReadAll(zr); err != nil {
			return Object{}, fmt.Errorf("gunzip %s: %w", key, err)
		}
	case strings.HasSuffix(key, objkey.ExtZstd):
		zr, err := zstd.NewReader(bytes.NewReader(raw))
		if err != nil {
			return Object{}, fmt.Errorf("zstd %s: %w", key, err)
		}
		defer zr.Close()
		if plain, err = io.ReadAll(zr); err != nil {
			return Object{}, fmt.Errorf("zstd %s: %w", key, err)
		}
	default:
		plain = raw
	}
	return Object{Key: key, Lines: Lines(plain), Metadata: res.Metadata, Size: int64(len(raw))}, nil
}

// MustReadObjects is ReadObjects failing the test on error.
func MustReadObjects(t testing.TB, c *s3.Client, bucket, prefix string) []Object {
	t.Helper()
	objs, err := ReadObjects(t.Context(), c, bucket, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}
