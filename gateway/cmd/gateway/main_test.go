package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

const gatewayPkg = "github.com/sluice-ingest/sluice/gateway/cmd/gateway"

func TestSettingsRefuseBadCombinations(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "SLUICE_API_KEYS_FILE"},
		{map[string]string{"SLUICE_AUTH": "none", "SLUICE_TLS_CERT": "c.pem"}, "SLUICE_TLS_KEY"},
		{map[string]string{"SLUICE_AUTH": "none", "SLUICE_SHUTDOWN_DELAY": "30s"}, "SLUICE_SHUTDOWN_DELAY"},
		{map[string]string{"SLUICE_AUTH": "none", "SLUICE_PUBLISH_TIMEOUT": "20s"}, "SLUICE_PUBLISH_TIMEOUT"},
		{map[string]string{"SLUICE_AUTH": "none", "SLUICE_SHUTDOWN_TIMEOUT": "5s", "SLUICE_SHUTDOWN_DELAY": "4s"}, "SLUICE_PUBLISH_TIMEOUT"},
		{map[string]string{"SLUICE_AUTH": "none", "SLUICE_MAX_INFLIGHT": "0"}, "SLUICE_MAX_INFLIGHT"},
		{map[string]string{"SLUICE_AUTH": "none", "SLUICE_MAX_CONSUMER_LAG": "-1"}, "SLUICE_MAX_CONSUMER_LAG"},
		{map[string]string{"SLUICE_AUTH": "none", "SLUICE_MAX_DEPTH": "x"}, "SLUICE_MAX_DEPTH"},
		{map[string]string{"SLUICE_AUTH": "none", "SLUICE_MAX_INFLIGHT_BYTES": "6MiB"}, "SLUICE_MAX_INFLIGHT_BYTES"},
	} {
		_, err := parseSettings(nil, func(k string) string { return tt.env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want one naming %s", tt.env, err, tt.want)
		}
	}
}

// /readyz follows the NATS connection and the stream, and turns 503 for good
// once the process is stopping.
func TestReadiness(t *testing.T) {
	n := devtest.NATS(t)
	nc, js := devtest.JetStream(t, n)
	r := &readiness{nc: nc, js: js, stream: stream.EventsStream}
	if r.check(t.Context()) == nil {
		t.Fatal("ready before the stream was ensured")
	}
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	r.ensured.Store(true)
	if err := r.check(t.Context()); err != nil {
		t.Fatalf("not ready: %v", err)
	}
	n.Shutdown()
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return r.check(t.Context()) != nil }, "ready with NATS down")
	if err := n.Restart(); err != nil {
		t.Fatal(err)
	}
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return r.check(t.Context()) == nil }, "not ready after NATS came back")
	r.stopping.Store(true)
	if r.check(t.Context()) == nil {
		t.Fatal("ready while stopping")
	}
}

// A client that never finishes its headers or its body loses its
// connection at the server's timeouts.
func TestSlowClientsAreCut(t *testing.T) {
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			w.WriteHeader(http.StatusRequestTimeout)
		}
	}), timeouts{readHeader: 100 * time.Millisecond, read: 300 * time.Millisecond, write: time.Second, idle: time.Second}, slog.New(slog.DiscardHandler))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	for name, send := range map[string]string{
		"headers never end": "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-",
		"body never ends":   "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":",
	} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, send); err != nil {
			t.Fatal(err)
		}
		// A deadline far past the server's timeouts, only so a failing test
		// cannot hang: the server must close the connection first.
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err = io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: the server kept the connection open", name)
		}
		c.Close()
	}
}

// binaryGateway is the real gateway binary against an embedded NATS.
type binaryGateway struct {
	proc        *devtest.Proc
	nats        *devstack.NATS
	js          jetstream.JetStream
	ingest, adm string
}

func startBinary(t *testing.T, env map[string]string) *binaryGateway {
	t.Helper()
	return startBinaryAt(t, devtest.Binary(t, gatewayPkg), env)
}

// startBinaryAt runs the gateway executable bin (see startBinary).
func startBinaryAt(t *testing.T, bin string, env map[string]string) *binaryGateway {
	t.Helper()
	return startBinaryOn(t, devtest.NATS(t), bin, env)
}

// startBinaryOn runs the gateway executable bin against n.
func startBinaryOn(t *testing.T, n *devstack.NATS, bin string, env map[string]string) *binaryGateway {
	t.Helper()
	g := &binaryGateway{nats: n}
	httpAddr, adminAddr := devtest.Addr(t), devtest.Addr(t)
	full := map[string]string{
		"SLUICE_NATS_URL":   g.nats.URL(),
		"SLUICE_HTTP_ADDR":  httpAddr,
		"SLUICE_ADMIN_ADDR": adminAddr,
		"SLUICE_LOG_FORMAT": "text",
	}
	for k, v := range env {
		full[k] = v
	}
	g.proc = devtest.Start(t, "gateway", bin, full)
	devtest.WaitReady(t, g.proc, "http://"+adminAddr+"/readyz")
	_, g.js = devtest.JetStream(t, g.nats)
	g.ingest, g.adm = httpAddr, adminAddr
	return g
}

// batchIDs reads the batch id of every message in the events stream.
func (g *binaryGateway) batchIDs(t *testing.T) map[string]bool {
	t.Helper()
	s, err := g.js.Stream(t.Context(), stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		ids[m.Header.Get(stream.HeaderBatchID)] = true
	}
	return ids
}

type accepted struct {
	Accepted int    `json:"accepted"`
	BatchID  string `json:"batch_id"`
	Error    string `json:"error"`
	Message  string `json:"message"`
}

func post(ctx context.Context, c *http.Client, url, key, idem, body string) (int, accepted, error) {
	return postTraced(ctx, c, url, key, idem, body, nil)
}

// postTraced is post, reporting through fresh whether the request went out
// on a new connection (not a reused keep-alive one).
func postTraced(ctx context.Context, c *http.Client, url, key, idem, body string, fresh *atomic.Bool) (int, accepted, error) {
	if fresh != nil {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { fresh.Store(!info.Reused) },
		})
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, accepted{}, err
	}
	if key != "" {
		r.Header.Set("X-API-Key", key)
	}
	if idem != "" {
		r.Header.Set("Idempotency-Key", idem)
	}
	resp, err := c.Do(r)
	if err != nil {
		return 0, accepted{}, err
	}
	defer resp.Body.Close()
	var a accepted
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return resp.StatusCode, a, fmt.Errorf("answer %d is not JSON: %w", resp.StatusCode, err)
	}
	return resp.StatusCode, a, nil
}

// SIGTERM under load: /readyz turns 503 first, every request the gateway
// took gets an answer (202 or 503, never a dropped connection), the process
// exits within its shutdown timeout, and every 202 is in the stream.
//
// The load's requests carry an Idempotency-Key, as a retrying client's
// should; that lets the HTTP client replay a request that raced the server
// closing an idle keep-alive connection, so what is left is a request the
// gateway answered or one it never took: a connection refused or reset
// while being set up, or a new
// connection reset after SIGTERM because it was still in the kernel's accept
// queue when the listener closed (the gateway never read it; it only cuts a
// request it read at the shutdown timeout, which this test stays well under).
func TestSIGTERMUnderLoad(t *testing.T) {
	const shutdownTimeout = 10 * time.Second
	g := startBinary(t, map[string]string{
		"SLUICE_AUTH":             "none",
		"SLUICE_SHUTDOWN_DELAY":   "500ms",
		"SLUICE_SHUTDOWN_TIMEOUT": shutdownTimeout.String(),
	})
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	url := "http://" + g.ingest + "/v1/events"
	var (
		mu                sync.Mutex
		ids               []string
		answered, refused atomic.Int64
		notTaken          atomic.Int64
		sigtermed         atomic.Bool
		wg                sync.WaitGroup
	)
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				body := fmt.Sprintf(`{"events":[{"w":%d,"i":%d},{"pad":"%s"}]}`, w, i, strings.Repeat("p", i%200))
				var fresh atomic.Bool
				status, a, err := postTraced(t.Context(), client, url, "", fmt.Sprintf("w%d-%d", w, i), body, &fresh)
				switch {
				case isDialError(err):
					return // refused or reset while connecting: the gateway no longer accepts connections
				case err != nil && fresh.Load() && sigtermed.Load():
					notTaken.Add(1)
					return // reset in the accept queue: never taken
				case err != nil:
					t.Errorf("request w%d-%d got no answer: %v", w, i, err)
					return
				case status == http.StatusAccepted:
					mu.Lock()
					ids = append(ids, a.BatchID)
					mu.Unlock()
				case status != http.StatusServiceUnavailable:
					t.Errorf("request w%d-%d: %d %s", w, i, status, a.Error)
				}
				answered.Add(1)
				if status == http.StatusServiceUnavailable {
					refused.Add(1)
				}
			}
		})
	}
	devtest.Eventually(t, 30*time.Second, 5*time.Millisecond, func() bool { return answered.Load() >= 300 }, "load did not get going")

	stopped := time.Now()
	sigtermed.Store(true)
	g.proc.Signal(syscall.SIGTERM)
	sawNotReady := false
	for {
		resp, err := http.Get("http://" + g.adm + "/readyz")
		if err != nil {
			break // the admin server is gone: the process is exiting
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			sawNotReady = true
			break
		}
	}
	if !sawNotReady {
		t.Error("/readyz never answered 503 after SIGTERM")
	}
	select {
	case <-g.proc.Done():
	case <-time.After(shutdownTimeout + 10*time.Second):
		t.Fatalf("still running %s after SIGTERM", time.Since(stopped))
	}
	if err := g.proc.Stop(0); err != nil {
		t.Errorf("exit: %v", err)
	}
	took := time.Since(stopped)
	wg.Wait()
	if took > shutdownTimeout+2*time.Second {
		t.Errorf("exited %s after SIGTERM, over SLUICE_SHUTDOWN_TIMEOUT=%s", took, shutdownTimeout)
	}

	stored := g.batchIDs(t)
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if !stored[id] {
			t.Errorf("batch %s was answered 202 but is not in the stream", id)
		}
	}
	t.Logf("%d answered (%d with 503), %d accepted, %d new connections reset unread, exited %s after SIGTERM",
		answered.Load(), refused.Load(), len(ids), notTaken.Load(), took.Round(time.Millisecond))
}

// SIGHUP reloads the keys file while requests keep being served; a broken
// file keeps the previous keys; keys never reach the log.
func TestSIGHUPReloadsKeys(t *testing.T) {
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "keys")
	writeKeys := func(content string) {
		tmp := filepath.Join(dir, "keys.tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, keysFile); err != nil { // as a secret volume swaps files
			t.Fatal(err)
		}
	}
	writeKeys("secret-key-one acme\n")
	g := startBinary(t, map[string]string{"SLUICE_API_KEYS_FILE": keysFile})
	url := "http://" + g.ingest + "/v1/events"
	client := &http.Client{Timeout: 10 * time.Second}
	status := func(key string) int {
		s, _, err := post(t.Context(), client, url, key, "", `{"a":1}`)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := status("secret-key-two"); s != http.StatusUnauthorized {
		t.Fatalf("new key before reload: %d", s)
	}

	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var served atomic.Int64
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				s, _, err := post(ctx, client, url, "secret-key-one", "", `{"a":1}`)
				if ctx.Err() != nil {
					return
				}
				if err != nil || s != http.StatusAccepted {
					t.Errorf("request with the old key during reloads: %d %v", s, err)
					return
				}
				served.Add(1)
			}
		})
	}
	writeKeys("secret-key-one acme\nsha256:" + sha256Hex("secret-key-two") + " beta\n")
	g.proc.Signal(syscall.SIGHUP)
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return status("secret-key-two") == http.StatusAccepted },
		"the new key was not accepted after SIGHUP")

	writeKeys("secret-key-one acme\nbroken line with too many fields here\n")
	g.proc.Signal(syscall.SIGHUP)
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return strings.Contains(g.proc.Output(), "keeping the previous API keys") },
		"the broken keys file was not reported")
	if s := status("secret-key-two"); s != http.StatusAccepted {
		t.Errorf("a broken keys file dropped the keys: %d", s)
	}
	devtest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return served.Load() >= 50 }, "the load was not served")
	stop()
	wg.Wait()
	if out := g.proc.Output(); strings.Contains(out, "secret-key") {
		t.Errorf("a key reached the log:\n%s", out)
	}
}

// With SLUICE_TLS_CERT and SLUICE_TLS_KEY the API is served over TLS, with
// HTTP/2.
func TestTLSWithHTTP2(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	g := startBinary(t, map[string]string{"SLUICE_AUTH": "none", "SLUICE_TLS_CERT": certFile, "SLUICE_TLS_KEY": keyFile})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true,
	}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://"+g.ingest+"/v1/events", strings.NewReader(`{"a":1}`))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || resp.ProtoMajor != 2 {
		t.Fatalf("%s %d, want HTTP/2 202", resp.Proto, resp.StatusCode)
	}
	// Plain HTTP on the TLS port gets no service.
	if s, _, err := post(t.Context(), &http.Client{Timeout: 5 * time.Second}, "http://"+g.ingest+"/v1/events", "", "", `{}`); err == nil && s == http.StatusAccepted {
		t.Fatal("plain HTTP was accepted on the TLS port")
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns a
// pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile, pool
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	if err := pem.Encode(w, &pem.Block{Type: typ, Bytes: der}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// isDialError reports whether err happened while connecting, before any
// byte of the request could reach the gateway.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
