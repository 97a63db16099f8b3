package sink

import (
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
)

// Unwritable and Permanent are two classes: the writer is broken, or the
// object is.
func TestUnwritable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{errors.New("connection refused"), false},
		{fmt.Errorf("put: %w", apiError("SlowDown")), false},
		{fmt.Errorf("put: %w", apiError("EntityTooLarge")), false},
		{fmt.Errorf("put: %w", ErrConflict), false},
		{fmt.Errorf("put: %w", apiError("AccessDenied")), true},
		{fmt.Errorf("put: %w", apiError("NoSuchBucket")), true},
		{fmt.Errorf("put: %w", apiError("PermanentRedirect")), true},
		{fmt.Errorf("put: %w", &v4.SigningError{Err: errors.New("failed to retrieve credentials")}), true},
	} {
		if got := Unwritable(tc.err); got != tc.want {
			t.Errorf("Unwritable(%v) = %v, want %v", tc.err, got, tc.want)
		}
		if Unwritable(tc.err) && Permanent(tc.err) {
			t.Errorf("%v is both unwritable and permanent", tc.err)
		}
	}
}

// CheckWritable against a real S3: nil with the right credentials, bucket
// and region, an Unwritable error with any of them wrong, and nothing left
// behind.
func TestCheckWritable(t *testing.T) {
	srv := devtest.S3(t)
	client := func(region, secret string) *s3.Client {
		return s3.New(s3.Options{
			Region: region, BaseEndpoint: aws.String(srv.Endpoint()), UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(devstack.S3AccessKey, secret, ""),
		})
	}
	for _, tc := range []struct {
		name           string
		c              *s3.Client
		bucket         string
		wantUnwritable bool
	}{
		{"right", client(devstack.S3Region, devstack.S3SecretKey), devstack.S3Bucket, false},
		{"wrong secret", client(devstack.S3Region, "not-the-secret"), devstack.S3Bucket, true},
		{"no such bucket", client(devstack.S3Region, devstack.S3SecretKey), "no-such-bucket", true},
		{"wrong region", client("eu-west-1", devstack.S3SecretKey), devstack.S3Bucket, true},
	} {
		sk, err := New(tc.c, Config{Bucket: tc.bucket, Prefix: "raw/", Compression: "gzip"})
		if err != nil {
			t.Fatal(err)
		}
		err = sk.CheckWritable(t.Context())
		if (err != nil) != tc.wantUnwritable || err != nil && !Unwritable(err) {
			t.Errorf("%s: CheckWritable = %v, want unwritable %v", tc.name, err, tc.wantUnwritable)
		}
	}
	if n := uploadsLeft(t, srv.Client()); n != 0 {
		t.Errorf("%d multipart uploads left by the checks", n)
	}
	if objs := devtest.MustReadObjects(t, srv.Client(), devstack.S3Bucket, ""); len(objs) != 0 {
		t.Errorf("the checks stored %d objects", len(objs))
	}
}
