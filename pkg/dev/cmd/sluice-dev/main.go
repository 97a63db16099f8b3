// Command sluice-dev runs the whole Sluice stack on one machine for
// development (`make run`): embedded NATS JetStream, versitygw as S3, Redis,
// then bin/gateway and bin/worker as separate processes. Ctrl-C stops
// everything it started.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/sluice-ingest/sluice/limiter/proctest"
	"github.com/sluice-ingest/sluice/pkg/config"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "sluice-dev:", err)
		os.Exit(1)
	}
}

type settings struct {
	dir                                  string
	natsPort, s3Port, redisPort          int
	httpPort, adminPort, workerAdminPort int
	batchMaxAge                          time.Duration
	binDir, natsSync                     string
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var s settings
	exe, _ := os.Executable()
	cs := config.New("sluice-dev", getenv)
	cs.String(&s.dir, "SLUICE_DEV_DIR", ".sluice", "directory for NATS, S3 and Redis files")
	cs.Int(&s.natsPort, "SLUICE_DEV_NATS_PORT", 4222, 1, "NATS port")
	cs.String(&s.natsSync, "SLUICE_DEV_NATS_SYNC", devstack.DefaultNATSSync, "JetStream sync_interval: a duration, or always (fsync before every acknowledgement)")
	cs.Int(&s.s3Port, "SLUICE_DEV_S3_PORT", 9000, 1, "S3 (versitygw) port")
	cs.Int(&s.redisPort, "SLUICE_DEV_REDIS_PORT", 6379, 1, "Redis port")
	cs.Int(&s.httpPort, "SLUICE_DEV_HTTP_PORT", 8080, 1, "gateway ingest port")
	cs.Int(&s.adminPort, "SLUICE_DEV_ADMIN_PORT", 9090, 1, "gateway admin port")
	cs.Int(&s.workerAdminPort, "SLUICE_DEV_WORKER_ADMIN_PORT", 9091, 1, "worker admin port")
	cs.Duration(&s.batchMaxAge, "SLUICE_DEV_BATCH_MAX_AGE", 3*time.Second, 10*time.Millisecond, "the worker's SLUICE_BATCH_MAX_AGE: how long an object stays open")
	cs.String(&s.binDir, "SLUICE_DEV_BIN_DIR", filepath.Dir(exe), "directory holding the gateway and worker binaries")
	if err := cs.Parse(args, stdout); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := filepath.Abs(s.dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("SLUICE_DEV_DIR: %w", err)
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stdout, "sluice-dev: "+format+"\n", a...) }

	nats, err := devstack.StartNATS(devstack.NATSOptions{Port: s.natsPort, StoreDir: filepath.Join(dir, "nats"), Sync: s.natsSync})
	if err != nil {
		return err
	}
	defer nats.Shutdown()
	logf("NATS JetStream (embedded) on %s, files in %s, sync_interval %s", nats.URL(), filepath.Join(dir, "nats"), nats.Sync())

	s3log, err := os.OpenFile(filepath.Join(dir, "versitygw.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer s3log.Close()
	s3srv, err := devstack.StartS3(ctx, devstack.S3Options{Port: s.s3Port, Dir: filepath.Join(dir, "s3"), Bucket: devstack.S3Bucket, Log: s3log})
	if err != nil {
		return err
	}
	defer s3srv.Stop()
	logf("S3 (versitygw) on %s, bucket %q, files in %s", s3srv.Endpoint(), devstack.S3Bucket, s3srv.Dir())

	redis, err := devstack.StartRedis(ctx, devstack.RedisOptions{Port: s.redisPort, Dir: filepath.Join(dir, "redis"), AllowEmbedded: true})
	if err != nil {
		return err
	}
	defer redis.Stop()
	logf("Redis (%s) on %s", redis.Kind, redis.URL())

	common := map[string]string{
		"SLUICE_NATS_URL":   nats.URL(),
		"SLUICE_LOG_FORMAT": "text",
	}
	gw := map[string]string{
		"SLUICE_HTTP_ADDR":  "127.0.0.1:" + strconv.Itoa(s.httpPort),
		"SLUICE_ADMIN_ADDR": "127.0.0.1:" + strconv.Itoa(s.adminPort),
		"SLUICE_AUTH":       "none",
		"SLUICE_REDIS_URL":  redis.URL(),
	}
	wk := map[string]string{
		"SLUICE_ADMIN_ADDR":     "127.0.0.1:" + strconv.Itoa(s.workerAdminPort),
		"SLUICE_S3_ENDPOINT":    s3srv.Endpoint(),
		"SLUICE_S3_PATH_STYLE":  "true",
		"SLUICE_S3_BUCKET":      devstack.S3Bucket,
		"SLUICE_BATCH_MAX_AGE":  s.batchMaxAge.String(),
		"AWS_ACCESS_KEY_ID":     devstack.S3AccessKey,
		"AWS_SECRET_ACCESS_KEY": devstack.S3SecretKey,
		"AWS_REGION":            devstack.S3Region,
	}
	exited := make(chan error, 2)
	worker, err := startChild(filepath.Join(s.binDir, "worker"), merge(common, wk), exited)
	if err != nil {
		return err
	}
	defer stopChild(worker)
	gateway, err := startChild(filepath.Join(s.binDir, "gateway"), merge(common, gw), exited)
	if err != nil {
		return err
	}
	defer stopChild(gateway) // deferred last, so stopped first

	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = devstack.WaitTCP(wctx, gw["SLUICE_HTTP_ADDR"])
	cancel()
	if err != nil {
		return fmt.Errorf("gateway did not start: %w", err)
	}
	fmt.Fprintf(stdout, `
Sluice is running.
  ingest:   http://%[1]s/v1/events   (auth off: every request is tenant "default")
  gateway:  http://%[2]s/readyz  /metrics
  worker:   http://%[3]s/readyz  /metrics
  NATS:     %[4]s
  S3:       %[5]s  (access key %[6]s, secret %[7]s, bucket %[8]s)
  objects:  %[9]s

Try:
  curl -i -X POST http://%[1]s/v1/events -H 'Content-Type: application/json' -d '{"events":[{"msg":"hello"},{"msg":"world"}]}'
  find %[9]s -type f     (an object appears within about %[10]s)
  nats --server %[4]s stream info SLUICE_EVENTS

Ctrl-C stops everything.
`, gw["SLUICE_HTTP_ADDR"], gw["SLUICE_ADMIN_ADDR"], wk["SLUICE_ADMIN_ADDR"], nats.URL(), s3srv.Endpoint(),
		devstack.S3AccessKey, devstack.S3SecretKey, devstack.S3Bucket,
		filepath.Join(s3srv.Dir(), devstack.S3Bucket), s.batchMaxAge+time.Second)

	select {
	case <-ctx.Done():
		// A second Ctrl-C now ends this process at once. On Linux the
		// kernel then kills every child (devstack.DieWithParent); elsewhere
		// the terminal's Ctrl-C reaches them too, being in its process group.
		stop()
		logf("stopping (Ctrl-C again to kill everything at once)")
		return nil
	case err := <-exited:
		return fmt.Errorf("a child process exited: %w", err)
	}
}

// startChild starts bin with this process's environment plus env, and
// reports on exited when it ends.
func startChild(bin string, env map[string]string, exited chan<- error) (*proctest.Process, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s: %w (run `make build`)", bin, err)
	}
	cmd := exec.Command(bin)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	c, err := proctest.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		<-c.Done()
		exited <- fmt.Errorf("%s: %v", filepath.Base(bin), c.Err())
	}()
	return c, nil
}

func stopChild(c *proctest.Process) { _ = c.Stop(syscall.SIGTERM, 40*time.Second) }

func merge(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
