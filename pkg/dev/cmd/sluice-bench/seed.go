package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
)

// runSeed is `sluice-bench seed`: the design Sluice replaces, measured on the
// same machine against the same versitygw (docs/benchmarks.md, End to end).
// The handler puts one job per payload on a buffered channel (MAX_QUEUE) and
// answers 200 at once; a dispatcher hands each job to a free worker of a
// MAX_WORKERS pool, which stores it with one PutObject, so what is queued at a
// stop is lost. The dispatcher waits for a worker, so a full queue blocks.
func runSeed(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice-bench seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "listen address (127.0.0.1:port)")
	endpoint := fs.String("s3-endpoint", "", "S3 endpoint (the dev stack's versitygw)")
	bucket := fs.String("bucket", devstack.S3Bucket, "bucket")
	workers := fs.Int("max-workers", 64, "MAX_WORKERS: uploads at once")
	queue := fs.Int("max-queue", 10000, "MAX_QUEUE: payloads waiting for a worker")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" || *endpoint == "" || *workers < 1 || *queue < 1 {
		return fmt.Errorf("seed: -addr, -s3-endpoint, -max-workers >= 1 and -max-queue >= 1 are required")
	}
	s := &seed{
		jobQueue: make(chan seedJob, *queue),
		pool:     make(chan chan seedJob, *workers),
		s3:       devstack.NewS3Client(*endpoint),
		bucket:   *bucket,
		log:      slog.New(slog.NewTextHandler(stderr, nil)),
	}
	for range *workers {
		go s.worker(ctx)
	}
	go s.dispatch(ctx)
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.payloadHandler)
	mux.HandleFunc("GET /stats", s.stats)
	return serve(ctx, *addr, mux)
}

type seed struct {
	jobQueue chan seedJob
	pool     chan chan seedJob
	s3       *s3.Client
	bucket   string
	log      *slog.Logger
	seq      atomic.Int64 // object names
	stored   atomic.Int64 // payloads PutObject confirmed
}

// seedJob is one payload of a collection: one event.
type seedJob struct {
	payload json.RawMessage
}

type payloadCollection struct {
	WindowsVersion string            `json:"version"`
	Token          string            `json:"token"`
	Payloads       []json.RawMessage `json:"data"`
}

func (s *seed) payloadHandler(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	var content payloadCollection
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&content); err != nil {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	for _, p := range content.Payloads {
		s.jobQueue <- seedJob{payload: p}
	}
	w.WriteHeader(http.StatusOK)
}

// dispatch hands each queued job to the next free worker.
func (s *seed) dispatch(ctx context.Context) {
	for {
		select {
		case job := <-s.jobQueue:
			select {
			case jobChannel := <-s.pool:
				jobChannel <- job
			case <-ctx.Done():
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

func (s *seed) worker(ctx context.Context) {
	jobChannel := make(chan seedJob)
	for {
		s.pool <- jobChannel
		select {
		case job := <-jobChannel:
			if err := s.uploadToS3(ctx, job.payload); err != nil {
				s.log.Error("upload payload", "err", err)
				continue
			}
			s.stored.Add(1)
		case <-ctx.Done():
			return
		}
	}
}

// uploadToS3 stores one payload as its own object, JSON-encoded, named by
// the time (and a counter, so that no two payloads share a key).
func (s *seed) uploadToS3(ctx context.Context, payload json.RawMessage) error {
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(payload); err != nil {
		return fmt.Errorf("encode payload: %w", err)
	}
	key := fmt.Sprintf("seed/%d-%d", time.Now().UnixNano(), s.seq.Add(1))
	_, err := s.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(s.bucket),
		Key:         aws.String(key),
		Body:        bytes.NewReader(b.Bytes()),
		ContentType: aws.String("text/plain"),
	})
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// stats answers {"stored": N}: the payloads stored so far.
func (s *seed) stats(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"stored":%d}`+"\n", s.stored.Load())
}
