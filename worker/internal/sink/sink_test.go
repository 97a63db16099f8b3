package sink

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/objkey"
	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// countingS3 counts the multipart calls of the real client.
type countingS3 struct {
	*s3.Client
	parts, completes atomic.Int64
	failComplete     atomic.Bool
}

func (c *countingS3) UploadPart(ctx context.Context, in *s3.UploadPartInput, o ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	c.parts.Add(1)
	return c.Client.UploadPart(ctx, in, o...)
}

func (c *countingS3) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, o ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	c.completes.Add(1)
	if c.failComplete.Load() {
		return nil, errors.New("injected: connection reset")
	}
	return c.Client.CompleteMultipartUpload(ctx, in, o...)
}

// bigObject is an object of incompressible events of about size bytes.
func bigObject(firstSeq uint64, size int) *object.Object {
	b := object.NewOpen(object.Limits{MaxBytes: 1 << 40, MaxEvents: 1 << 30, MaxAge: time.Hour})
	at := time.Now().UTC().Add(-time.Hour)
	raw := make([]byte, 48<<10)
	for i := 0; i*(100<<10) < size; i++ {
		body := []byte{}
		for range 2 {
			_, _ = rand.Read(raw)
			body = fmt.Appendf(body, "{\"r\":%q}\n", hex.EncodeToString(raw))
		}
		meta := envelope.Meta{Tenant: "acme", BatchID: envelope.NewBatchID(), ReceivedAt: at, EventCount: 2}
		b.Add(object.Item{Meta: meta, Seq: firstSeq + uint64(i), Body: body, Stream: testStream}, time.Now())
	}
	return b.All(object.ReasonShutdown)[0]
}

// testStream is the stream incarnation of the tests' objects.
var testStream = objkey.StreamTag(time.Date(2026, 12, 1, 20, 0, 0, 1, time.UTC))

// TestMultipartAboveThreshold: an object larger than the part size goes up
// in parts, keeps its metadata, and is written once like a single put.
func TestMultipartAboveThreshold(t *testing.T) {
	srv := devtest.S3(t)
	c := &countingS3{Client: srv.Client()}
	sk, err := New(c, Config{Bucket: devstack.S3Bucket, Prefix: "mp", Compression: "gzip", PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	small, err := sk.Encode(bigObject(1, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sk.Put(t.Context(), small); err != nil {
		t.Fatal(err)
	}
	if c.parts.Load() != 0 {
		t.Fatalf("a %d-byte object used %d parts", len(small.Body), c.parts.Load())
	}
	obj, err := sk.Encode(bigObject(100, 12<<20))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sk.Put(t.Context(), obj); err != nil {
		t.Fatal(err)
	}
	if c.parts.Load() < 3 {
		t.Fatalf("a %d-byte object went up in %d parts, want 3", len(obj.Body), c.parts.Load())
	}
	// The same object again: the key is taken, the metadata matches.
	if _, err := sk.Put(t.Context(), obj); err != nil {
		t.Fatalf("second multipart put of the same object: %v", err)
	}
	// Another object under the same key: the multipart upload is
	// conditional too, so the stored object is not replaced.
	other := obj
	other.Metadata = maps.Clone(obj.Metadata)
	other.Metadata[MetaSeqsHash] = "0"
	if _, err := sk.Put(t.Context(), other); !errors.Is(err, ErrConflict) {
		t.Fatalf("multipart put of another object under the key: err = %v, want ErrConflict", err)
	}
	objs := devtest.MustReadObjects(t, srv.Client(), devstack.S3Bucket, "mp/")
	if len(objs) != 2 {
		t.Fatalf("%d objects, want 2", len(objs))
	}
	for _, o := range objs {
		if o.Key == obj.Key && (o.Size != int64(len(obj.Body)) || o.Metadata[MetaEventCount] != fmt.Sprint(obj.Events) ||
			o.Metadata[MetaSeqsHash] != obj.Metadata[MetaSeqsHash] ||
			len(o.Lines) != obj.Events) {
			t.Errorf("multipart object %s: size %d metadata %v lines %d; want size %d and %d events",
				o.Key, o.Size, o.Metadata, len(o.Lines), len(obj.Body), obj.Events)
		}
	}
	if n := uploadsLeft(t, srv.Client()); n != 0 {
		t.Errorf("%d multipart uploads left open", n)
	}
}

// TestFailedMultipartIsAborted: a multipart upload that fails leaves no
// parts behind, and AbortStale removes uploads abandoned by a dead worker.
func TestFailedMultipartIsAborted(t *testing.T) {
	srv := devtest.S3(t)
	c := &countingS3{Client: srv.Client()}
	sk, err := New(c, Config{Bucket: devstack.S3Bucket, Prefix: "mp", Compression: "none", PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	obj, err := sk.Encode(bigObject(1, 11<<20))
	if err != nil {
		t.Fatal(err)
	}
	c.failComplete.Store(true)
	if _, err := sk.Put(t.Context(), obj); err == nil || Permanent(err) {
		t.Fatalf("put with a failing complete: err = %v, want a retryable error", err)
	}
	if n := uploadsLeft(t, srv.Client()); n != 0 {
		t.Errorf("%d multipart uploads left after a failed put", n)
	}
	// A worker killed mid-upload leaves one behind; other writers to the
	// bucket have uploads of their own, also under the prefix's letters.
	abandoned := "mp/tenant=acme/dt=2026-11-25/hour=10/00000000000000000001-00000000000000000009.ndjson"
	for _, key := range []string{abandoned, "mp/other-app/part.bin", "mpx/tenant=acme/dt=2026-11-25/hour=10/00000000000000000001-00000000000000000009.ndjson", "elsewhere.bin"} {
		if _, err := srv.Client().CreateMultipartUpload(t.Context(), &s3.CreateMultipartUploadInput{
			Bucket: aws.String(devstack.S3Bucket), Key: aws.String(key),
		}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := sk.AbortStale(t.Context(), time.Hour); err != nil || n != 0 {
		t.Fatalf("AbortStale(1h) of a fresh upload: %d, %v; want 0", n, err)
	}
	if n, err := sk.AbortStale(t.Context(), -time.Minute); err != nil || n != 1 {
		t.Fatalf("AbortStale: %d, %v; want 1 (only the Sluice object under the prefix)", n, err)
	}
	if n := uploadsLeft(t, srv.Client()); n != 3 {
		t.Errorf("%d multipart uploads left after AbortStale, want the 3 that are not Sluice's", n)
	}
}

func uploadsLeft(t *testing.T, c *s3.Client) int {
	t.Helper()
	out, err := c.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(devstack.S3Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Uploads)
}

func TestPermanent(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{errors.New("connection refused"), false},
		{fmt.Errorf("put: %w", apiError("SlowDown")), false},
		{fmt.Errorf("put: %w", apiError("AccessDenied")), false},
		{fmt.Errorf("put: %w", apiError("EntityTooLarge")), true},
		{fmt.Errorf("put: %w", ErrConflict), false},
	} {
		if got := Permanent(tc.err); got != tc.want {
			t.Errorf("Permanent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

type apiError string

func (e apiError) Error() string                 { return string(e) }
func (e apiError) ErrorCode() string             { return string(e) }
func (e apiError) ErrorMessage() string          { return string(e) }
func (e apiError) ErrorFault() smithy.ErrorFault { return smithy.FaultServer }

func TestEncodeWritesARedeliveredMessageOnce(t *testing.T) {
	sk, err := New(&countingS3{}, Config{Bucket: "b", Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	b := object.NewOpen(object.Limits{MaxBytes: 1 << 20, MaxEvents: 100, MaxAge: time.Hour})
	meta := envelope.Meta{Tenant: "acme", BatchID: "x", ReceivedAt: time.Now(), EventCount: 2}
	for _, seq := range []uint64{5, 3, 5} {
		b.Add(object.Item{Meta: meta, Seq: seq, Body: []byte("{\"a\":1}\n{\"b\":2}\n")}, time.Now())
	}
	obj, err := sk.Encode(b.All(object.ReasonShutdown)[0])
	if err != nil {
		t.Fatal(err)
	}
	if obj.Events != 4 || obj.Metadata[MetaEventCount] != "4" || obj.Metadata[MetaFirstSeq] != "3" || obj.Metadata[MetaLastSeq] != "5" {
		t.Errorf("object of seqs 3, 5, 5: %d events, metadata %v", obj.Events, obj.Metadata)
	}
}

// smallObject is an object of incarnation stream holding one message of one
// event per seq, each event naming the message's request.
func smallObject(stream, request string, seqs ...uint64) *object.Object {
	b := object.NewOpen(object.Limits{MaxBytes: 1 << 20, MaxEvents: 100, MaxAge: time.Hour})
	meta := envelope.Meta{Tenant: "acme", BatchID: request, ReceivedAt: time.Date(2026, 12, 1, 19, 30, 0, 0, time.UTC), EventCount: 1}
	for _, seq := range seqs {
		b.Add(object.Item{Meta: meta, Seq: seq, Body: fmt.Appendf(nil, "{\"seq\":%d}\n", seq), Stream: stream}, time.Now())
	}
	return b.All(object.ReasonShutdown)[0]
}

// TestSameKeyOtherStreamIncarnation: an object whose key holds an object with
// the same sequences and count but from another stream incarnation, or
// from before objects carried one, is not "this object": it is stored under
// its own key, which a retry finds again. Within one incarnation, other
// content under the key is a conflict.
func TestSameKeyOtherStreamIncarnation(t *testing.T) {
	srv := devtest.S3(t)
	sk, err := New(srv.Client(), Config{Bucket: devstack.S3Bucket, Prefix: "inc", Compression: "gzip"})
	if err != nil {
		t.Fatal(err)
	}
	put := func(obj Object) string {
		t.Helper()
		key, err := sk.Put(t.Context(), obj)
		if err != nil {
			t.Fatalf("put %s: %v", obj.Key, err)
		}
		return key
	}
	old, err := sk.Encode(smallObject(testStream, "old", 1, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	if key := put(old); key != old.Key {
		t.Fatalf("first object stored under %s, want the plain key %s", key, old.Key)
	}
	recreated := objkey.StreamTag(time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC))
	fresh, err := sk.Encode(smallObject(recreated, "new", 1, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the second put is a retry: it finds its own object
		if key := put(fresh); key != fresh.StreamKey || key == fresh.Key {
			t.Fatalf("put %d of the recreated stream's object: stored under %s, want %s", i+1, key, fresh.StreamKey)
		}
	}
	if k, err := objkey.Parse(fresh.StreamKey); err != nil || k.Stream != recreated || k.FirstSeq != 1 || k.LastSeq != 3 {
		t.Errorf("stream key %s parses to %+v, %v", fresh.StreamKey, k, err)
	}
	// Same incarnation, same sequences and count, other content.
	other, err := sk.Encode(smallObject(recreated, "other", 1, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sk.Put(t.Context(), other); !errors.Is(err, ErrConflict) {
		t.Errorf("other content of the same incarnation: err = %v, want ErrConflict", err)
	}
	// An object written before objects carried incarnation and digest
	// proves nothing, even with every older field equal.
	legacy, err := sk.Encode(smallObject(testStream, "legacy", 7, 8))
	if err != nil {
		t.Fatal(err)
	}
	meta := maps.Clone(legacy.Metadata)
	delete(meta, MetaStreamCreated)
	delete(meta, MetaContentHash)
	if _, err := srv.Client().PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String(devstack.S3Bucket), Key: aws.String(legacy.Key), Body: bytes.NewReader(legacy.Body), Metadata: meta,
	}); err != nil {
		t.Fatal(err)
	}
	if key := put(legacy); key != legacy.StreamKey {
		t.Errorf("object meeting an object without incarnation stored under %s, want %s", key, legacy.StreamKey)
	}
	objs := devtest.MustReadObjects(t, srv.Client(), devstack.S3Bucket, "inc/")
	byKey := map[string]devtest.Object{}
	for _, o := range objs {
		byKey[o.Key] = o
	}
	if len(objs) != 4 || len(byKey[fresh.StreamKey].Lines) != 3 || byKey[fresh.StreamKey].Metadata[MetaContentHash] != fresh.Metadata[MetaContentHash] ||
		byKey[fresh.StreamKey].Metadata[MetaStreamCreated] != recreated {
		t.Errorf("objects: %+v", objs)
	}
}

// TestContentDigestIgnoresCompression: the digest is of the lines, so the
// same object has the same digest in every format and compression.
func TestContentDigestIgnoresCompression(t *testing.T) {
	digests := map[string]bool{}
	for _, cfg := range []Config{
		{Compression: "gzip"}, {Compression: "zstd"}, {Compression: "none"},
		{Format: FormatParquet}, {Format: FormatParquet, Compression: "gzip"}, {Format: FormatParquet, Compression: "none"},
	} {
		cfg.Bucket = "b"
		sk, err := New(&countingS3{}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := sk.Encode(smallObject(testStream, "r", 4, 5))
		if err != nil {
			t.Fatal(err)
		}
		digests[obj.Metadata[MetaContentHash]] = true
	}
	if len(digests) != 1 {
		t.Errorf("digests by format and compression: %v, want one", digests)
	}
}
