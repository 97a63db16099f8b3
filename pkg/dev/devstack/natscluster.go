package devstack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-ingest/sluice/limiter/proctest"
)

// NATSClusterOptions configures a cluster of nats-server processes.
type NATSClusterOptions struct {
	// Binary is the nats-server executable (built from the module the
	// workspace requires, so every node runs the version the tests embed).
	Binary string
	// Dir holds one directory per node: its config file, JetStream store
	// and log. Each survives a kill, so a restarted node finds its data.
	Dir string
	// Nodes is the cluster size, at least 3 (a quorum with one node
	// down); 0 means 3.
	Nodes int
	// Name is the cluster name; empty means "sluice-test".
	Name string
}

// NATSCluster is a JetStream cluster of real nats-server processes on
// 127.0.0.1, routed to each other. Unlike the embedded NATS, a node can be
// killed with SIGKILL and started again on the same ports and store.
type NATSCluster struct {
	nodes []*NATSNode
}

// NATSNode is one nats-server process of a NATSCluster.
type NATSNode struct {
	// Name is the node's server_name (n1, n2, ...).
	Name string
	bin  string
	dir  string
	port int // client port
	mon  int // monitoring port, for /healthz

	mu   sync.Mutex
	proc *proctest.Process // the current run; nil when killed
}

// StartNATSCluster writes a config file for each node (client, cluster
// and monitoring ports free on 127.0.0.1, routes to every node), starts
// the processes and waits until every node reports JetStream healthy.
func StartNATSCluster(ctx context.Context, opts NATSClusterOptions) (*NATSCluster, error) {
	if opts.Binary == "" || opts.Dir == "" {
		return nil, errors.New("nats cluster: Binary and Dir are required")
	}
	n := cmp.Or(opts.Nodes, 3)
	if n < 3 {
		return nil, fmt.Errorf("nats cluster of %d nodes: JetStream needs at least 3 to keep a quorum with one down", n)
	}
	name := cmp.Or(opts.Name, "sluice-test")
	c := &NATSCluster{}
	routePorts := make([]int, n)
	var routes []string
	for i := range n {
		var err error
		if routePorts[i], err = FreePort(); err != nil {
			return nil, err
		}
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", routePorts[i]))
	}
	for i := range n {
		node := &NATSNode{Name: "n" + strconv.Itoa(i+1), bin: opts.Binary, dir: filepath.Join(opts.Dir, "n"+strconv.Itoa(i+1))}
		var err error
		if node.port, err = FreePort(); err != nil {
			return nil, err
		}
		if node.mon, err = FreePort(); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(node.dir, 0o755); err != nil {
			return nil, fmt.Errorf("nats node %s: %w", node.Name, err)
		}
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
max_payload: 8MB
jetstream {
  store_dir: %q
}
cluster {
  name: %s
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, node.Name, node.port, node.mon, filepath.Join(node.dir, "store"), name, routePorts[i], strings.Join(routes, ", "))
		if err := os.WriteFile(node.conf(), []byte(conf), 0o644); err != nil {
			return nil, fmt.Errorf("nats node %s: %w", node.Name, err)
		}
		c.nodes = append(c.nodes, node)
	}
	for _, node := range c.nodes {
		if err := node.launch(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	for _, node := range c.nodes {
		if err := node.WaitHealthy(ctx, 30*time.Second); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// Nodes are the cluster's servers.
func (c *NATSCluster) Nodes() []*NATSNode { return c.nodes }

// URL is every node's client URL, comma-separated (SLUICE_NATS_URL's form
// for a cluster).
func (c *NATSCluster) URL() string {
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// Stop kills every node; their files stay.
func (c *NATSCluster) Stop() {
	for _, n := range c.nodes {
		n.Kill()
	}
}

func (n *NATSNode) conf() string { return filepath.Join(n.dir, "nats.conf") }

func (n *NATSNode) logPath() string { return filepath.Join(n.dir, "nats.log") }

// URL is the node's client URL.
func (n *NATSNode) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// Monitor is the node's monitoring URL (/healthz, /jsz, ...).
func (n *NATSNode) Monitor() string { return fmt.Sprintf("http://127.0.0.1:%d", n.mon) }

// Log is what the node wrote so far, over all its runs.
func (n *NATSNode) Log() string {
	b, _ := os.ReadFile(n.logPath())
	return string(b)
}

// launch starts the process, its output appended to the node's log.
func (n *NATSNode) launch() error {
	log, err := os.OpenFile(n.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("nats node %s log: %w", n.Name, err)
	}
	defer log.Close() // the child has its own descriptor
	cmd := exec.Command(n.bin, "-c", n.conf())
	cmd.Stdout, cmd.Stderr = log, log
	proc, err := proctest.Start(cmd)
	if err != nil {
		return fmt.Errorf("start nats node %s: %w", n.Name, err)
	}
	n.mu.Lock()
	n.proc = proc
	n.mu.Unlock()
	return nil
}

// Kill ends the node with SIGKILL and waits for it; a stopped node is
// left alone.
func (n *NATSNode) Kill() {
	n.mu.Lock()
	proc := n.proc
	n.proc = nil
	n.mu.Unlock()
	if proc != nil {
		proc.Kill()
	}
}

// Restart starts a killed node again on the same ports, config and store,
// and waits until it is healthy: routed to the cluster, its JetStream
// streams and consumers current by its /healthz (which can say so a moment
// before the last messages written while it was down are copied). A port taken
// in the meantime by another program makes the start fail; it is tried
// again until timeout.
func (n *NATSNode) Restart(ctx context.Context, timeout time.Duration) error {
	n.Kill()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if err := n.launch(); err != nil {
			return err
		}
		err := n.WaitHealthy(ctx, timeout)
		if err == nil || !n.exited() || ctx.Err() != nil {
			return err
		}
		select { // exited at start (a port in use): try again
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// running is the current run, or nil when the node was killed.
func (n *NATSNode) running() *proctest.Process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

func (n *NATSNode) exited() bool {
	proc := n.running()
	return proc == nil || proc.Exited()
}

// WaitHealthy polls the node's /healthz until it answers 200 (JetStream
// enabled, the meta leader known, its streams and consumers current), the
// process exits or timeout passes.
func (n *NATSNode) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	proc := n.running()
	if proc == nil {
		return fmt.Errorf("nats node %s is not running", n.Name)
	}
	url := n.Monitor() + "/healthz"
	err := proctest.WaitHTTP(ctx, url, 100*time.Millisecond, proc.Done())
	switch {
	case errors.Is(err, proctest.ErrExited):
		return fmt.Errorf("nats node %s exited before it was healthy", n.Name)
	case err != nil:
		return fmt.Errorf("nats node %s not healthy at %s: %w", n.Name, url, err)
	}
	return nil
}
