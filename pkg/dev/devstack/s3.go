package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/sluice-ingest/sluice/limiter/proctest"
)

// Dev stack S3 credentials and bucket, as documented in docs/configuration.md.
const (
	S3AccessKey = "sluice"
	S3SecretKey = "sluicesecret"
	S3Bucket    = "sluice"
	S3Region    = "us-east-1"
)

// S3Options configures a versitygw server.
type S3Options struct {
	// Binary is the versitygw executable; empty means FindBinary.
	Binary string
	// Port to listen on at 127.0.0.1; 0 picks a free one.
	Port int
	// Dir is the posix backend's root; buckets are its sub-directories.
	// It must be on a filesystem with user extended attributes, where
	// versitygw keeps object metadata.
	Dir string
	// Bucket is created at start when not empty.
	Bucket string
	// Log receives the server's output; nil discards it.
	Log io.Writer
}

// S3 is a running versitygw with the posix backend and metadata on.
type S3 struct {
	opts S3Options
	proc *proctest.Process // nil when stopped
}

// StartS3 starts versitygw, waits for it and creates the bucket.
func StartS3(ctx context.Context, opts S3Options) (*S3, error) {
	if opts.Binary == "" {
		b, err := FindBinary("versitygw", "SLUICE_VERSITYGW")
		if err != nil {
			return nil, err
		}
		opts.Binary = b
	}
	var err error
	if opts.Port, err = proctest.PortOrFree(opts.Port); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("s3 root: %w", err)
	}
	s := &S3{opts: opts}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if opts.Bucket != "" {
		if err := s.CreateBucket(ctx, opts.Bucket); err != nil {
			s.Stop()
			return nil, err
		}
	}
	return s, nil
}

func (s *S3) start(ctx context.Context) error {
	cmd := exec.Command(s.opts.Binary,
		"--access", S3AccessKey, "--secret", S3SecretKey, "--region", S3Region,
		"--port", s.Addr(), "--quiet",
		"posix", s.opts.Dir)
	cmd.Stdout, cmd.Stderr = s.opts.Log, s.opts.Log
	proc, err := proctest.Start(cmd)
	if err != nil {
		return fmt.Errorf("start versitygw: %w", err)
	}
	s.proc = proc

	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := WaitTCP(wctx, s.Addr()); err != nil {
		s.Stop()
		return fmt.Errorf("versitygw did not start: %w", err)
	}
	return nil
}

// Addr is host:port of the S3 API.
func (s *S3) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.opts.Port) }

// Endpoint is the S3 API URL, for path-style clients.
func (s *S3) Endpoint() string { return "http://" + s.Addr() }

// Pid is the process id of versitygw, 0 when it is stopped.
func (s *S3) Pid() int {
	if s.proc == nil {
		return 0
	}
	return s.proc.Pid()
}

// Dir is the posix backend's root directory.
func (s *S3) Dir() string { return s.opts.Dir }

// Stop terminates the server with an interrupt (SIGINT, which versitygw
// stops on), killing it after 5s; its files stay.
func (s *S3) Stop() {
	if s.proc != nil {
		_ = s.proc.Stop(os.Interrupt, 5*time.Second)
		s.proc = nil
	}
}

// Kill ends the server with SIGKILL and waits for it; its files stay.
func (s *S3) Kill() {
	if s.proc != nil {
		s.proc.Kill()
		s.proc = nil
	}
}

// Restart starts the server again on the same port and directory.
func (s *S3) Restart(ctx context.Context) error {
	s.Stop()
	return s.start(ctx)
}

// Client returns an S3 client for this server.
func (s *S3) Client() *s3.Client {
	return NewS3Client(s.Endpoint())
}

// NewS3Client returns a path-style client with the dev stack credentials.
func NewS3Client(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		Region:       S3Region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(S3AccessKey, S3SecretKey, ""),
	})
}

// CreateBucket creates a bucket; one that exists already is fine.
func (s *S3) CreateBucket(ctx context.Context, bucket string) error {
	_, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	var owned *types.BucketAlreadyOwnedByYou
	var exists *types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	return nil
}
