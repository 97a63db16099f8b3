package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// benchKey is the one API key of the benchmark's gateway (tenant "bench").
const benchKey = "bench-key"

// stack is everything the benchmark runs: the servers and the binaries.
type stack struct {
	s       settings
	self    string // this executable, for the nats, ceiling and seed servers
	s3      *devstack.S3
	redis   *devstack.Redis
	nats    *proc
	gateway *proc
	worker  *proc
	ceiling *proc
	seed    *proc

	natsPort, natsProfPort                 int
	gatewayHTTP, gatewayAdmin, workerAdmin string
	ceilingAddr, seedAddr                  string

	nc *nats.Conn
	js jetstream.JetStream
}

// startStack starts versitygw, redis-server, nats-server, the gateway, the
// worker and, as the rows need them, the ceiling and seed servers. On error
// it returns what it started, for the caller to close.
func startStack(ctx context.Context, s settings, logf func(string, ...any)) (*stack, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	st := &stack{s: s, self: self}
	for _, bin := range []string{"gateway", "worker"} {
		if _, err := os.Stat(filepath.Join(s.binDir, bin)); err != nil {
			return nil, fmt.Errorf("%w (run `make build`, or set -bin-dir)", err)
		}
	}
	addrs := []*string{&st.gatewayHTTP, &st.gatewayAdmin, &st.workerAdmin, &st.ceilingAddr, &st.seedAddr}
	for _, a := range addrs {
		if *a, err = devstack.FreeAddr(); err != nil {
			return nil, err
		}
	}
	if st.natsPort, err = devstack.FreePort(); err != nil {
		return nil, err
	}
	if st.natsProfPort, err = devstack.FreePort(); err != nil {
		return nil, err
	}

	s3log, err := os.Create(filepath.Join(s.workDir, "versitygw.log"))
	if err != nil {
		return nil, err
	}
	defer s3log.Close() // the child keeps its own descriptor
	st.s3, err = devstack.StartS3(ctx, devstack.S3Options{Dir: filepath.Join(s.workDir, "s3"), Bucket: devstack.S3Bucket, Log: s3log})
	if err != nil {
		return st, err
	}
	logf("versitygw on %s (pid %d)", st.s3.Endpoint(), st.s3.Pid())
	st.redis, err = devstack.StartRedis(ctx, devstack.RedisOptions{Dir: filepath.Join(s.workDir, "redis")})
	if err != nil {
		return st, err
	}
	logf("redis-server on %s (pid %d)", st.redis.Addr(), st.redis.Pid())
	if err := st.startNATS(ctx, false); err != nil {
		return st, err
	}
	if err := st.startGateway(ctx); err != nil {
		return st, err
	}
	if st.nc, err = nats.Connect(st.natsURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond)); err != nil {
		return st, fmt.Errorf("connect to nats-server: %w", err)
	}
	if st.js, err = jetstream.New(st.nc); err != nil {
		return st, err
	}
	if err := st.startWorker(ctx); err != nil {
		return st, err
	}
	if s.has("ceiling") {
		if st.ceiling, err = st.startServer(ctx, "ceiling", "-addr", st.ceilingAddr); err != nil {
			return st, err
		}
	}
	if s.has("seed") {
		if st.seed, err = st.startServer(ctx, "seed", "-addr", st.seedAddr, "-s3-endpoint", st.s3.Endpoint(),
			"-max-workers", strconv.Itoa(s.seedWorkers), "-max-queue", strconv.Itoa(s.seedQueue)); err != nil {
			return st, err
		}
	}
	return st, nil
}

func (st *stack) natsURL() string { return "nats://127.0.0.1:" + strconv.Itoa(st.natsPort) }

// startNATS (re)starts nats-server on its port and store, with fsync on
// every write when syncAlways.
func (st *stack) startNATS(ctx context.Context, syncAlways bool) error {
	args := []string{"nats", "-port", strconv.Itoa(st.natsPort), "-store", filepath.Join(st.s.workDir, "nats"),
		"-prof-port", strconv.Itoa(st.natsProfPort), "-sync=" + natsSync(syncAlways)}
	p, err := startProc("nats-server", st.s.workDir, st.self, args, nil)
	if err != nil {
		return err
	}
	st.nats = p
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := devstack.WaitTCP(wctx, "127.0.0.1:"+strconv.Itoa(st.natsPort)); err != nil {
		return fmt.Errorf("nats-server: %w\n%s", err, p.tail())
	}
	return nil
}

func (st *stack) startGateway(ctx context.Context) error {
	keys := filepath.Join(st.s.workDir, "keys")
	if err := os.WriteFile(keys, []byte(benchKey+" bench\n"), 0o600); err != nil {
		return err
	}
	p, err := startProc("gateway", st.s.workDir, filepath.Join(st.s.binDir, "gateway"), nil, map[string]string{
		"SLUICE_NATS_URL":      st.natsURL(),
		"SLUICE_HTTP_ADDR":     st.gatewayHTTP,
		"SLUICE_ADMIN_ADDR":    st.gatewayAdmin,
		"SLUICE_AUTH":          "keys",
		"SLUICE_API_KEYS_FILE": keys,
		// The limiter decides every request (by Redis, or from the
		// tenant's allotment) and never refuses one.
		"SLUICE_RATE_LIMIT": "1000000/s,burst=1000000",
		"SLUICE_REDIS_URL":  st.redis.URL(),
		"SLUICE_PPROF":      "true",
		"SLUICE_LOG_LEVEL":  "warn",
	})
	if err != nil {
		return err
	}
	st.gateway = p
	return p.waitHTTP(ctx, "http://"+st.gatewayAdmin+"/readyz")
}

func (st *stack) startWorker(ctx context.Context) error {
	p, err := startProc("worker", st.s.workDir, filepath.Join(st.s.binDir, "worker"), nil, map[string]string{
		"SLUICE_NATS_URL":        st.natsURL(),
		"SLUICE_ADMIN_ADDR":      st.workerAdmin,
		"SLUICE_S3_ENDPOINT":     st.s3.Endpoint(),
		"SLUICE_S3_PATH_STYLE":   "true",
		"SLUICE_S3_BUCKET":       devstack.S3Bucket,
		"SLUICE_S3_PREFIX":       "bench",
		"SLUICE_BATCH_MAX_BYTES": "16MiB",
		"SLUICE_BATCH_MAX_AGE":   "1s",
		"SLUICE_PPROF":           "true",
		"SLUICE_LOG_LEVEL":       "warn",
		"AWS_ACCESS_KEY_ID":      devstack.S3AccessKey,
		"AWS_SECRET_ACCESS_KEY":  devstack.S3SecretKey,
		"AWS_REGION":             devstack.S3Region,
	})
	if err != nil {
		return err
	}
	st.worker = p
	return p.waitHTTP(ctx, "http://"+st.workerAdmin+"/readyz")
}

// startServer starts `sluice-bench <name> args...` and waits for its port.
func (st *stack) startServer(ctx context.Context, name string, args ...string) (*proc, error) {
	p, err := startProc(name, st.s.workDir, st.self, append([]string{name}, args...), nil)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := devstack.WaitTCP(wctx, args[1]); err != nil {
		p.stop(time.Second)
		return nil, fmt.Errorf("%s: %w\n%s", name, err, p.tail())
	}
	return p, nil
}

// waitDrained waits until the events stream is empty: every message the
// gateway stored has been written to S3 and acknowledged by the worker.
func (st *stack) waitDrained(ctx context.Context, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		msgs, err := st.streamMsgs(ctx)
		if err == nil && msgs == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream %s not drained within %s (%d messages left, %v)", stream.EventsStream, within, msgs, err)
		case <-st.worker.process.Done():
			return fmt.Errorf("worker exited: %v\n%s", st.worker.process.Err(), st.worker.tail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (st *stack) streamMsgs(ctx context.Context) (uint64, error) {
	s, err := st.js.Stream(ctx, stream.EventsStream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// alive checks that no process of the stack has exited.
func (st *stack) alive() error {
	for _, p := range []*proc{st.nats, st.gateway, st.worker, st.ceiling, st.seed} {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.process.Err(), p.tail())
		}
	}
	return nil
}

// close stops everything, the gateway first (its in-flight requests end),
// then the worker, the other servers, and NATS, Redis and S3 last.
func (st *stack) close() {
	if st.nc != nil {
		st.nc.Close()
	}
	for _, p := range []*proc{st.gateway, st.seed, st.ceiling, st.worker, st.nats} {
		p.stop(30 * time.Second)
	}
	if st.redis != nil {
		st.redis.Stop()
	}
	if st.s3 != nil {
		st.s3.Stop()
	}
}

var errInterrupted = errors.New("interrupted")

// natsSync is the sync_interval of the benchmark's nats-server: always for
// the strict-durability row, else the dev stack's.
func natsSync(always bool) string {
	if always {
		return "always"
	}
	return devstack.DefaultNATSSync
}
