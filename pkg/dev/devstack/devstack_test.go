package devstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
)

// TestS3KeepsMetadataAndConditionalPut checks the two versitygw features the
// worker relies on: object metadata and If-None-Match: * on an existing key.
func TestS3KeepsMetadataAndConditionalPut(t *testing.T) {
	srv := devtest.S3(t)
	c := srv.Client()
	ctx := t.Context()
	put := func() error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(devstack.S3Bucket), Key: aws.String("a/b.ndjson"),
			Body: bytes.NewReader([]byte("x\n")), IfNoneMatch: aws.String("*"),
			Metadata: map[string]string{"sluice-event-count": "1"},
		})
		return err
	}
	if err := put(); err != nil {
		t.Fatal(err)
	}
	err := put()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "PreconditionFailed" {
		t.Fatalf("second conditional put: err = %v, want PreconditionFailed", err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(devstack.S3Bucket), Key: aws.String("a/b.ndjson")})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(b) != "x\n" || out.Metadata["sluice-event-count"] != "1" {
		t.Errorf("got body %q metadata %v", b, out.Metadata)
	}
}

func TestNATSRestartKeepsStreams(t *testing.T) {
	n := devtest.NATS(t)
	_, js := devtest.JetStream(t, n)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "s", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := n.Restart(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		st, err := js.Stream(ctx, "S")
		if err == nil && st.CachedInfo().State.Msgs == 1 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stream not back after restart: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// The embedded NATS server runs with the sync_interval it was given,
// explicitly two minutes when none was.
func TestNATSSyncInterval(t *testing.T) {
	t.Setenv("SLUICE_DEV_NATS_SYNC", "")
	for sync, want := range map[string]string{"": "2m0s", "always": "always", "1s": "1s"} {
		n, err := devstack.StartNATS(devstack.NATSOptions{StoreDir: t.TempDir(), Sync: sync})
		if err != nil {
			t.Fatal(err)
		}
		got := n.Sync()
		n.Shutdown()
		if got != want {
			t.Errorf("Sync %q: server syncs %s, want %s", sync, got, want)
		}
	}
	if _, err := devstack.StartNATS(devstack.NATSOptions{StoreDir: t.TempDir(), Sync: "sometimes"}); err == nil {
		t.Error("Sync \"sometimes\" accepted")
	}
}

// The compose NATS configuration is one nats-server accepts, and it chooses
// its sync_interval (always) rather than inheriting the server's default.
func TestComposeNATSConfigSyncsAlways(t *testing.T) {
	opts, err := server.ProcessConfigFile("../../../deploy/nats/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !opts.SyncAlways || opts.MaxPayload < 8<<20-1<<20 {
		t.Errorf("deploy/nats/nats.conf: sync always %v, max_payload %d", opts.SyncAlways, opts.MaxPayload)
	}
}

// A node of the process cluster killed with SIGKILL leaves an R3 stream
// writable by the other two; restarted on the same ports and store, it
// becomes healthy and holds every message, including those written while
// it was down.
func TestNATSClusterKillAndRestartNode(t *testing.T) {
	c := devtest.NATSCluster(t, 3)
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}, Storage: jetstream.FileStorage, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	publish := func(n int) {
		for range n {
			// The killed node's clients reconnect and the stream may elect a
			// leader first: on a loaded machine that takes more than 10 s.
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := js.Publish(pctx, "s", []byte("x"), jetstream.WithRetryAttempts(150))
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(10)
	// Every replica holds the first messages before a node dies: a
	// follower still catching up does not stand for leader.
	devtest.Eventually(t, 20*time.Second, 50*time.Millisecond, func() bool {
		for _, n := range c.Nodes() {
			if localMsgs(t, n) != 10 {
				return false
			}
		}
		return true
	}, "the replicas never all held the first 10 messages")
	node := c.Nodes()[0]
	node.Kill()
	publish(10)
	if err := node.Restart(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// The restarted node's own copy (its /jsz reports its local store);
	// /healthz may say ok a moment before the last messages are copied.
	devtest.Eventually(t, 10*time.Second, 50*time.Millisecond, func() bool { return localMsgs(t, node) == 20 },
		"the restarted node never held the 20 messages")
	if strings.Count(node.Log(), "Starting nats-server") != 2 {
		t.Errorf("log of %s does not show two starts:\n%s", node.Name, node.Log())
	}
}

func localMsgs(t *testing.T, node *devstack.NATSNode) uint64 {
	resp, err := http.Get(node.Monitor() + "/jsz?streams=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jsz struct {
		Accounts []struct {
			Streams []struct {
				Name  string `json:"name"`
				State struct {
					Msgs uint64 `json:"messages"`
				} `json:"state"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jsz); err != nil {
		t.Fatal(err)
	}
	var msgs uint64
	for _, a := range jsz.Accounts {
		for _, s := range a.Streams {
			if s.Name == "S" {
				msgs = s.State.Msgs
			}
		}
	}
	return msgs
}
