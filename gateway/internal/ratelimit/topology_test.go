package ratelimit

import (
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-ingest/sluice/gateway/internal/auth"
	"github.com/sluice-ingest/sluice/limiter/redistest"
)

// The cluster forms of SLUICE_REDIS_URL reach a real two-master Redis
// Cluster, and limits stay exact for tenants whose keys live on either
// master.
func TestRedisClusterURL(t *testing.T) {
	cluster := redistest.StartCluster(t, 2)
	ctx := t.Context()
	a, b := cluster.Nodes[0].Addr(), cluster.Nodes[1].Addr()
	ca, cb := cluster.Nodes[0].Client(t), cluster.Nodes[1].Client(t)

	for _, url := range []string{"redis://" + a + "," + b, "redis+cluster://" + a} {
		adm, _ := newRateLimiter(t, map[string]string{"SLUICE_REDIS_URL": url, "SLUICE_RATE_LIMIT": "4/h"})
		if _, ok := adm.rdb.(*redis.ClusterClient); !ok {
			t.Fatalf("%s: client is a %T", url, adm.rdb)
		}
		for i := range 8 {
			tenant := "tenant-" + strconv.Itoa(i)
			if n, _ := allowUntilDenied(t, adm, auth.Key{Tenant: tenant}, 1); n != 4 {
				t.Errorf("%s, %s: 4/h allowed %d", url, tenant, n)
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
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master, "mymaster")

	adm, _ := newRateLimiter(t, map[string]string{"SLUICE_REDIS_URL": "redis+sentinel://" + sentinel.Addr() + "/mymaster", "SLUICE_RATE_LIMIT": "3/h"})
	if n, _ := allowUntilDenied(t, adm, auth.Key{Tenant: "acme"}, 1); n != 3 {
		t.Errorf("3/h through Sentinel allowed %d", n)
	}
	keys, err := master.Client(t).Keys(t.Context(), Prefix+"{[0-9a-f]*}:*").Result() // not the heartbeat set
	if err != nil || len(keys) != 1 {
		t.Errorf("keys on the master: %v, %v; want the tenant's one", keys, err)
	}
}
