package sink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// unwritableCodes are S3 error codes about this writer rather than the
// object: its credentials, its permissions, the bucket or the region it was
// given. Retrying the same request cannot help, and neither can another
// object.
var unwritableCodes = []string{
	"AccessDenied", "AllAccessDisabled", "AccountProblem",
	"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired",
	"NoSuchBucket", "InvalidBucketName",
	"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException",
}

// Unwritable is the one place that decides whether an error means this
// sink cannot write at all (bad or missing credentials, no permission, no
// such bucket, the wrong region). It is another class than Permanent: the
// worker is broken, not the message, so its messages must go to a worker
// that can write, and nothing is dead-lettered.
func Unwritable(err error) bool {
	var signing *v4.SigningError // the credentials could not be retrieved
	return slices.Contains(unwritableCodes, errorCode(err)) || errors.As(err, &signing)
}

// CheckWritable asks S3 whether this sink may write under its prefix,
// without writing anything: it starts a multipart upload (which takes the
// same permission as PutObject, and the same credentials, bucket and
// region) and aborts it at once. An error for which Unwritable holds means
// the sink cannot write.
func (s *Sink) CheckWritable(ctx context.Context) error {
	key := "_sluice-write-check"
	if prefix := strings.Trim(s.cfg.Prefix, "/"); prefix != "" {
		key = prefix + "/" + key
	}
	out, err := s.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("check write access to s3://%s/%s: %w", s.cfg.Bucket, key, err)
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.s3.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), UploadId: out.UploadId,
	}); err != nil {
		return fmt.Errorf("abort the write check of s3://%s/%s: %w", s.cfg.Bucket, key, err)
	}
	return nil
}
