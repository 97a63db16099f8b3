package redistest

import (
	"bufio"
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-ingest/sluice/limiter/proctest"
)

// Cluster is a Redis Cluster of masters without replicas.
type Cluster struct {
	Nodes []*Server
}

// StartCluster runs n redis-server processes with cluster mode on, splits
// the 16384 slots evenly with CLUSTER ADDSLOTSRANGE, joins them with
// CLUSTER MEET and waits for cluster_state:ok on every node, each knowing
// all n. The nodes stop at cleanup.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	c := &Cluster{}
	root := tb.TempDir()
	for i := range n {
		dir := filepath.Join(root, "node"+strconv.Itoa(i))
		bus, err := proctest.FreePort()
		if err != nil {
			tb.Fatal(err)
		}
		s := StartWith(tb, Options{Dir: dir, Args: []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "2000",
			"--cluster-port", strconv.Itoa(bus)}})
		s.BusPort = bus
		c.Nodes = append(c.Nodes, s)
	}
	ctx := context.Background()
	per := 16384 / n
	for i, s := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr()})
		lo, hi := i*per, (i+1)*per-1
		if i == n-1 {
			hi = 16383
		}
		if err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			tb.Fatalf("cluster addslotsrange on %s: %v", s.Addr(), err)
		}
		if i > 0 {
			host, port, _ := net.SplitHostPort(c.Nodes[0].Addr())
			if err := cl.Do(ctx, "CLUSTER", "MEET", host, port, c.Nodes[0].BusPort).Err(); err != nil {
				tb.Fatalf("cluster meet %s -> %s: %v", s.Addr(), c.Nodes[0].Addr(), err)
			}
		}
		_ = cl.Close()
	}
	end := time.Now().Add(30 * time.Second)
	for _, s := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr()})
		for {
			info, err := cl.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && knownNodes(info) == n {
				break
			}
			if time.Now().After(end) {
				tb.Fatalf("cluster node %s not ok after 30s: %v\n%s", s.Addr(), err, info)
			}
			time.Sleep(50 * time.Millisecond) // polling a condition
		}
		_ = cl.Close()
	}
	return c
}

func knownNodes(info string) int {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "cluster_known_nodes:"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// Addrs lists the nodes' addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr()
	}
	return out
}

// Client returns a cluster client, closed when the test ends.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	tb.Cleanup(func() { _ = cl.Close() })
	return cl
}
