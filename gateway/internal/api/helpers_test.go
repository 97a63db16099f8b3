package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/client/apierror"
	"github.com/sluice-ingest/sluice/gateway/internal/auth"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

const testKeys = "key-a acme\nkey-b beta\n"

// gateway is the ingest handler served over real HTTP, publishing to an
// embedded JetStream server.
type gateway struct {
	t       testing.TB
	nats    *devstack.NATS
	nc      *nats.Conn // the handler's connection
	js      jetstream.JetStream
	inspect jetstream.JetStream // the test's own connection
	handler *Handler
	url     string
	client  *http.Client
}

type gatewayOptions struct {
	cfg            Config
	streamMaxBytes int64
	// wrap, when set, wraps the publisher (to slow it down).
	wrap func(Publisher) Publisher
	// maxLag, when set, watches the workers' consumer lag (every 20ms).
	maxLag int64
	// noCoalesce publishes every request alone; by default the gateway
	// coalesces, as the binary does.
	noCoalesce bool
}

func startGateway(t testing.TB, o gatewayOptions) *gateway {
	t.Helper()
	g := &gateway{t: t, nats: devtest.NATS(t)}
	nc, err := stream.Connect(g.nats.URL(), "", "test-gateway", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cfg := o.cfg
	if cfg.MaxInflight == 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	g.nc = nc
	g.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(cfg.MaxInflight), jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.EnsureStreams(t.Context(), g.js, stream.Config{MaxBytes: o.streamMaxBytes}); err != nil {
		t.Fatal(err)
	}
	_, g.inspect = devtest.JetStream(t, g.nats)

	if cfg.Auth == nil {
		keys, err := auth.ParseKeys(strings.NewReader(testKeys), nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Auth = auth.NewAuthenticator(keys)
	}
	cfg.Publisher = g.js
	if o.wrap != nil {
		cfg.Publisher = o.wrap(g.js)
	}
	cfg.Connected = nc.IsConnected
	cfg.Coalesce = !o.noCoalesce
	if o.maxLag > 0 {
		cfg.Lag = NewLagWatcher(g.js, stream.EventsStream, stream.Consumer, o.maxLag, 20*time.Millisecond, slog.New(slog.DiscardHandler))
		go func() { _ = cfg.Lag.Run(t.Context()) }()
	}
	g.handler = NewHandler(cfg)
	srv := httptest.NewServer(g.handler)
	t.Cleanup(srv.Close)
	g.url = srv.URL + "/v1/events"
	g.client = &http.Client{Timeout: 30 * time.Second}
	return g
}

// req is one request to the gateway.
type req struct {
	method, path string
	key          string // Bearer key; "" for none
	ct, ce       string
	idemKey      string
	body         io.Reader
	length       int64 // Content-Length; 0 means the body's own, -1 chunked
	// ctx, when set, is the request's context (the test's otherwise).
	ctx context.Context
}

// answer is what the gateway said.
type answer struct {
	status    int
	header    http.Header
	Error     string `json:"error"`
	Message   string `json:"message"`
	Accepted  int    `json:"accepted"`
	BatchID   string `json:"batch_id"`
	Duplicate bool   `json:"duplicate"`
}

func (g *gateway) do(r req) (answer, error) {
	if r.method == "" {
		r.method = http.MethodPost
	}
	url := g.url
	if r.path != "" {
		url = strings.TrimSuffix(g.url, "/v1/events") + r.path
	}
	ctx := r.ctx
	if ctx == nil {
		ctx = g.t.Context()
	}
	hr, err := http.NewRequestWithContext(ctx, r.method, url, r.body)
	if err != nil {
		return answer{}, err
	}
	switch {
	case r.length < 0:
		hr.ContentLength = -1
		hr.Body = io.NopCloser(r.body) // hide the length from the transport
	case r.length > 0:
		hr.ContentLength = r.length
	}
	if r.key != "" {
		hr.Header.Set("Authorization", "Bearer "+r.key)
	}
	if r.ct != "" {
		hr.Header.Set("Content-Type", r.ct)
	}
	if r.ce != "" {
		hr.Header.Set("Content-Encoding", r.ce)
	}
	if r.idemKey != "" {
		hr.Header.Set("Idempotency-Key", r.idemKey)
	}
	resp, err := g.client.Do(hr)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	a := answer{status: resp.StatusCode, header: resp.Header}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		return a, errors.New("Content-Type " + ct + ": " + string(b))
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, errors.New("answer is not JSON: " + string(b))
	}
	if want := apierror.Code(a.Error).Status(); a.Error != "" && want != a.status {
		return a, fmt.Errorf("answered %d %s; the catalogue (client/apierror) has %s at %d", a.status, a.Error, a.Error, want)
	}
	return a, nil
}

func (g *gateway) mustDo(r req) answer {
	g.t.Helper()
	a, err := g.do(r)
	if err != nil {
		g.t.Fatal(err)
	}
	return a
}

// post sends body as JSON with key-a.
func (g *gateway) post(body string) answer {
	g.t.Helper()
	return g.mustDo(req{key: "key-a", ct: "application/json", body: strings.NewReader(body)})
}

func (g *gateway) streamInfo() *jetstream.StreamInfo {
	g.t.Helper()
	s, err := g.inspect.Stream(g.t.Context(), stream.EventsStream)
	if err != nil {
		g.t.Fatal(err)
	}
	info, err := s.Info(g.t.Context())
	if err != nil {
		g.t.Fatal(err)
	}
	return info
}

// messages reads every message of the events stream.
func (g *gateway) messages() []*jetstream.RawStreamMsg {
	g.t.Helper()
	s, err := g.inspect.Stream(g.t.Context(), stream.EventsStream)
	if err != nil {
		g.t.Fatal(err)
	}
	info := g.streamInfo()
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(g.t.Context(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			g.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// requestIDs are the batch ids of the requests m holds: one, or those of
// a coalesced message.
func requestIDs(t testing.TB, m *jetstream.RawStreamMsg) []string {
	t.Helper()
	meta, err := envelope.MetaOf(m.Subject, m.Header)
	if err != nil {
		t.Fatal(err)
	}
	if !meta.Coalesced() {
		return []string{meta.BatchID}
	}
	ids := make([]string, len(meta.Requests))
	for i := range ids {
		ids[i] = meta.Request(i).BatchID
	}
	return ids
}

func gzipped(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

func zstded(s string) string {
	w, _ := zstd.NewWriter(nil)
	defer w.Close()
	return string(w.EncodeAll([]byte(s), nil))
}

// fillReader yields prefix, then n bytes of fill: a large body that is
// never held in memory.
type fillReader struct {
	prefix []byte
	fill   byte
	n      int64
}

func (f *fillReader) Read(p []byte) (int, error) {
	if len(f.prefix) > 0 {
		n := copy(p, f.prefix)
		f.prefix = f.prefix[n:]
		return n, nil
	}
	if f.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	for i := range p {
		p[i] = f.fill
	}
	f.n -= int64(len(p))
	return len(p), nil
}

// bomb is a compressed body decoding to a JSON prefix and about mib MiB of
// 'x': members (gzip) or frames (zstd) of 1 MiB each, one after the other,
// which decoders take as one stream; it costs two small compressions.
func bomb(compress func(string) string, prefix string, mib int) []byte {
	x := strings.Repeat("x", 1<<20)
	var b bytes.Buffer
	b.WriteString(compress(prefix + x))
	member := compress(x)
	for range mib - 1 {
		b.WriteString(member)
	}
	return b.Bytes()
}
