package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

// newS3Client is the S3 client from the AWS default configuration and the
// SLUICE_S3_* settings.
func newS3Client(ctx context.Context, s settings) (*s3.Client, error) {
	// An S3 request whose body was sent but which never answers would hold
	// an upload slot and its messages (kept alive) forever: bound the wait
	// for the response, which does not depend on the object's size. The
	// upload is then retried like any other failure.
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.ResponseHeaderTimeout = 2 * time.Minute
	})
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithHTTPClient(httpClient))
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if s.s3Endpoint != "" {
			o.BaseEndpoint = aws.String(s.s3Endpoint)
		}
		o.UsePathStyle = s.s3PathStyle
	}), nil
}

// cleanUploads aborts, at once and then every hour, multipart uploads left
// behind by a worker killed mid-upload (any older than an hour), until ctx
// ends.
func cleanUploads(ctx context.Context, sk *sink.Sink, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := sk.AbortStale(ctx, time.Hour)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("clean up abandoned multipart uploads", "err", err)
		case n > 0:
			log.Info("aborted abandoned multipart uploads", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
