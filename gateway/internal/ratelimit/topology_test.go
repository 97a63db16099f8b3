package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-ingest/sluice/gateway/internal/auth"
	"github.com/sluice-ingest/sluice/pkg/devstack"
	"github.com/sluice-ingest/sluice/pkg/devstack/devtest"
)

// The cluster forms of SLUICE_REDIS_URL reach a real two-master Redis
// Cluster, and limits stay exact for tenants whose keys live on either
// master.
func TestRedisClusterURL(t *testing.T) {
	a, b := startRedisProc(t, "--cluster-enabled", "yes"), startRedisProc(t, "--cluster-enabled", "yes")
	ctx := t.Context()
	ca, cb := redis.NewClient(&redis.Options{Addr: a}), redis.NewClient(&redis.Options{Addr: b})
	defer ca.Close()
	defer cb.Close()
	_, portB, _ := strings.Cut(b, ":")
	for _, err := range []error{
		ca.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 8191).Err(),
		cb.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 8192, 16383).Err(),
		ca.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", portB).Err(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	devtest.Eventually(t, 30*time.Second, 50*time.Millisecond, func() bool {
		ia, _ := ca.ClusterInfo(ctx).Result()
		ib, _ := cb.ClusterInfo(ctx).Result()
		return strings.Contains(ia, "cluster_state:ok") && strings.Contains(ib, "cluster_state:ok")
	}, "the two-master cluster did not reach cluster_state:ok")

	for _, url := range []string{"redis://" + a + "," + b, "redis+cluster://" + a} {
		adm, _ := newAdmitter(t, map[string]string{"SLUICE_REDIS_URL": url, "SLUICE_RATE_LIMIT": "4/h"})
		if _, ok := adm.rdb.(*redis.ClusterClient); !ok {
			t.Fatalf("%s: client is a %T", url, adm.rdb)
		}
		for i := range 8 {
			tenant := "tenant-" + strconv.Itoa(i)
			if n, _ := admitUntilDenied(t, adm, auth.Key{Tenant: tenant}, 1); n != 4 {
				t.Errorf("%s, %s: 4/h admitted %d", url, tenant, n)
			}
		}
		// The tenants' keys are on both masters; then fresh state for the
		// next URL.
		for _, c := range []*redis.Client{ca, cb} {
			if n, err := c.DBSize(ctx).Result(); err != nil || n == 0 {
				t.Errorf("%s: %d keys on %s, %v", url, n, c.Options().Addr, err)
			}
			if err := c.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// The sentinel form finds the master through a real Sentinel and limits on
// it.
func TestRedisSentinelURL(t *testing.T) {
	master := devtest.Redis(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	writeFile(t, conf, "sentinel monitor mymaster "+strings.Replace(master.Addr(), ":", " ", 1)+" 1\n")
	sentinel := startRedisProc(t, conf, "--sentinel")

	adm, _ := newAdmitter(t, map[string]string{"SLUICE_REDIS_URL": "redis+sentinel://" + sentinel + "/mymaster", "SLUICE_RATE_LIMIT": "3/h"})
	if n, _ := admitUntilDenied(t, adm, auth.Key{Tenant: "acme"}, 1); n != 3 {
		t.Errorf("3/h through Sentinel admitted %d", n)
	}
	mc := redis.NewClient(&redis.Options{Addr: master.Addr()})
	defer mc.Close()
	keys, err := mc.Keys(t.Context(), Prefix+"{[0-9a-f]*}:*").Result() // not the heartbeat set
	if err != nil || len(keys) != 1 {
		t.Errorf("keys on the master: %v, %v; want the tenant's one", keys, err)
	}
}

// startRedisProc runs redis-server with args (a config file first, if any)
// on a free port under a temporary directory, stopped at cleanup, and
// returns its address.
func startRedisProc(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := devstack.FindBinary("redis-server", "SLUICE_REDIS_SERVER")
	if errors.Is(err, devstack.ErrNotFound) {
		devtest.Missing(t, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	port, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	dir := t.TempDir()
	args = append(args, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir, "--save", "", "--appendonly", "no")
	cmd := exec.Command(bin, args...)
	devstack.DieWithParent(cmd)
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("redis-server %v:\n%s", args, b)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := devstack.WaitTCP(ctx, addr); err != nil {
		t.Fatal(fmt.Errorf("redis-server %v did not start: %w", args, err))
	}
	return addr
}
