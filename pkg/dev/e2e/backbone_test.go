package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/objkey"
)

const (
	gatewayPkg = "github.com/sluice-ingest/sluice/gateway/cmd/gateway"
	workerPkg  = "github.com/sluice-ingest/sluice/worker/cmd/worker"
)

// stack is a running Sluice: NATS, S3, one gateway and one worker.
type stack struct {
	nats      *devstack.NATS
	s3        *devstack.S3
	ingest    string // http://host:port/v1/events
	gateway   *devtest.Proc
	worker    *devtest.Proc
	workerEnv map[string]string
}

func startStack(t *testing.T, keys string, workerEnv map[string]string) *stack {
	t.Helper()
	st := &stack{nats: devtest.NATS(t), s3: devtest.S3(t)}
	gwBin, wkBin := devtest.Binary(t, gatewayPkg), devtest.Binary(t, workerPkg)

	keysFile := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keysFile, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	httpAddr, gwAdmin, wkAdmin := devtest.Addr(t), devtest.Addr(t), devtest.Addr(t)
	st.gateway = devtest.Start(t, "gateway", gwBin, map[string]string{
		"SLUICE_NATS_URL":      st.nats.URL(),
		"SLUICE_HTTP_ADDR":     httpAddr,
		"SLUICE_ADMIN_ADDR":    gwAdmin,
		"SLUICE_API_KEYS_FILE": keysFile,
	})
	st.workerEnv = map[string]string{
		"SLUICE_NATS_URL":       st.nats.URL(),
		"SLUICE_ADMIN_ADDR":     wkAdmin,
		"SLUICE_S3_ENDPOINT":    st.s3.Endpoint(),
		"SLUICE_S3_PATH_STYLE":  "true",
		"SLUICE_S3_BUCKET":      devstack.S3Bucket,
		"SLUICE_S3_PREFIX":      "raw",
		"SLUICE_BATCH_MAX_AGE":  "500ms",
		"AWS_ACCESS_KEY_ID":     devstack.S3AccessKey,
		"AWS_SECRET_ACCESS_KEY": devstack.S3SecretKey,
		"AWS_REGION":            devstack.S3Region,
	}
	for k, v := range workerEnv {
		st.workerEnv[k] = v
	}
	st.worker = devtest.Start(t, "worker", wkBin, st.workerEnv)
	devtest.WaitReady(t, st.gateway, "http://"+gwAdmin+"/readyz")
	devtest.WaitReady(t, st.worker, "http://"+wkAdmin+"/readyz")
	st.ingest = "http://" + httpAddr + "/v1/events"
	return st
}

// sentEvent is what the test puts in every event, to find it again.
type sentEvent struct {
	Req int    `json:"req"`
	N   int    `json:"n"`
	Pad string `json:"pad"`
}

type acceptedReq struct {
	tenant  string
	batchID string
	events  int
}

// post sends request number req with n events for the tenant of key, in one
// of the body shapes, and returns what the gateway accepted.
func post(t *testing.T, client *http.Client, url, key string, req, n int) (acceptedReq, error) {
	return postKeyed(t, client, url, key, "", req, n)
}

// postKeyed is post with an Idempotency-Key (none when empty).
func postKeyed(t *testing.T, client *http.Client, url, key, idem string, req, n int) (acceptedReq, error) {
	evs := make([]sentEvent, n)
	for i := range evs {
		evs[i] = sentEvent{Req: req, N: i, Pad: fmt.Sprintf("%0*d", req%50, i)}
	}
	var body []byte
	ct := "application/json"
	switch req % 4 {
	case 0:
		body, _ = json.Marshal(map[string]any{"events": evs})
	case 1:
		body, _ = json.Marshal(evs)
	case 2:
		body, _ = json.Marshal(map[string]any{"version": "1", "token": "x", "data": evs})
	case 3:
		if n == 1 {
			body, _ = json.Marshal(evs[0])
			break
		}
		ct = "application/x-ndjson"
		for _, ev := range evs {
			line, _ := json.Marshal(ev)
			body = append(append(body, line...), '\n')
		}
	}
	r, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	r.Header.Set("Content-Type", ct)
	r.Header.Set("Authorization", "Bearer "+key)
	if idem != "" {
		r.Header.Set("Idempotency-Key", idem)
	}
	resp, err := client.Do(r)
	if err != nil {
		return acceptedReq{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return acceptedReq{}, fmt.Errorf("request %d: status %d: %s", req, resp.StatusCode, b)
	}
	var out struct {
		Accepted int    `json:"accepted"`
		BatchID  string `json:"batch_id"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Accepted != n || out.BatchID == "" {
		return acceptedReq{}, fmt.Errorf("request %d: bad 202 body %s (want accepted %d)", req, b, n)
	}
	return acceptedReq{batchID: out.BatchID, events: n}, nil
}

// storedLine is one line of an object.
type storedLine struct {
	ID         string    `json:"id"`
	Tenant     string    `json:"tenant"`
	ReceivedAt time.Time `json:"received_at"`
	Data       sentEvent `json:"data"`
}

// TestBackbone posts a few hundred requests for two tenants through the real
// gateway and worker and checks that every accepted event is in S3 exactly
// once, with the contract's key, line format and metadata.
func TestBackbone(t *testing.T) {
	st := startStack(t, "key-a acme\nkey-b beta\n", nil)
	tenants := map[string]string{"key-a": "acme", "key-b": "beta"}

	const requests = 300
	var (
		mu       sync.Mutex
		accepted = map[int]acceptedReq{}
		wg       sync.WaitGroup
		errs     = make(chan error, requests)
		client   = &http.Client{Timeout: 10 * time.Second}
	)
	jobs := make(chan int)
	for range 8 {
		wg.Go(func() {
			for req := range jobs {
				key := "key-a"
				if req%3 == 0 {
					key = "key-b"
				}
				a, err := post(t, client, st.ingest, key, req, 1+req%20)
				if err != nil {
					errs <- err
					continue
				}
				a.tenant = tenants[key]
				mu.Lock()
				accepted[req] = a
				mu.Unlock()
			}
		})
	}
	for req := range requests {
		jobs <- req
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := 0
	for _, a := range accepted {
		want += a.events
	}

	var objs []devtest.Object
	devtest.Eventually(t, 60*time.Second, 250*time.Millisecond, func() bool {
		objs = devtest.MustReadObjects(t, st.s3.Client(), devstack.S3Bucket, "raw/")
		n := 0
		for _, o := range objs {
			n += len(o.Lines)
		}
		return n >= want
	}, fmt.Sprintf("not all %d accepted events reached S3", want))

	seen := map[[2]int]string{}
	for _, o := range objs {
		k, err := objkey.Parse(o.Key)
		if err != nil {
			t.Fatalf("object key: %v", err)
		}
		if k.Prefix != "raw" || k.Ext != objkey.ExtGzip {
			t.Errorf("key %s: prefix %q ext %q", o.Key, k.Prefix, k.Ext)
		}
		if got := o.Metadata["sluice-event-count"]; got != strconv.Itoa(len(o.Lines)) {
			t.Errorf("key %s: metadata event count %q, object has %d lines", o.Key, got, len(o.Lines))
		}
		if o.Metadata["sluice-first-seq"] != strconv.FormatUint(k.FirstSeq, 10) || o.Metadata["sluice-last-seq"] != strconv.FormatUint(k.LastSeq, 10) {
			t.Errorf("key %s: metadata sequences %v", o.Key, o.Metadata)
		}
		for _, line := range o.Lines {
			var l storedLine
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			a, ok := accepted[l.Data.Req]
			if !ok {
				t.Errorf("line for request %d, which was not accepted: %s", l.Data.Req, line)
				continue
			}
			if wantID := fmt.Sprintf("%s-%d", a.batchID, l.Data.N); l.ID != wantID {
				t.Errorf("id %q, want %q", l.ID, wantID)
			}
			if l.Tenant != a.tenant || k.Tenant != a.tenant {
				t.Errorf("line tenant %q in key tenant %q, want %q", l.Tenant, k.Tenant, a.tenant)
			}
			if hour := l.ReceivedAt.UTC().Truncate(time.Hour); !hour.Equal(k.Hour) {
				t.Errorf("received_at %s in partition %s", l.ReceivedAt, k.Hour)
			}
			id := [2]int{l.Data.Req, l.Data.N}
			if prev, dup := seen[id]; dup {
				t.Errorf("event %v stored twice: %s and %s", id, prev, o.Key)
			}
			seen[id] = o.Key
		}
	}
	for req, a := range accepted {
		for n := range a.events {
			if _, ok := seen[[2]int{req, n}]; !ok {
				t.Errorf("accepted event %d/%d missing from S3", req, n)
			}
		}
	}
	t.Logf("%d requests, %d events, %d objects", len(accepted), want, len(objs))
}
