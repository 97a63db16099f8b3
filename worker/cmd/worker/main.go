package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sluice-ingest/sluice/pkg/config"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// run is the whole process: settings, then the parts wired in dependency
// order, then the actors until a signal or a failure (see actors for the
// shutdown order).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s, err := parseSettings(args, getenv, stdout)
	if err != nil {
		return err
	}
	log, err := s.log.Logger(stderr, "worker")
	if err != nil {
		return err
	}
	setMemoryLimit(s, getenv, log)

	s3c, err := newS3Client(ctx, s)
	if err != nil {
		return err
	}
	sk, err := sink.New(s3c, sink.Config{Bucket: s.s3Bucket, Prefix: s.s3Prefix, Format: s.format, Compression: s.compression, PartSize: s.partSize})
	if err != nil {
		return err
	}
	nc, js, err := connect(s, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	w, err := wire(s, log, nc, js, s3c, sk)
	if err != nil {
		return err
	}
	return stopped(w.actors(ctx).Run(), log)
}
