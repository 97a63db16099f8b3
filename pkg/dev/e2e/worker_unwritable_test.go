package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// TestWorkerWithWrongCredentials: two real workers on one consumer, one
// given a wrong S3 secret. That one answers /readyz with 503, shows
// sluice_worker_s3_writable 0, logs the refusal once and acks nothing; every
// accepted event lands once, through the healthy worker.
func TestWorkerWithWrongCredentials(t *testing.T) {
	st := startStack(t, "key-a acme\n", map[string]string{"SLUICE_BATCH_MAX_AGE": "300ms"})
	env := map[string]string{}
	for k, v := range st.workerEnv {
		env[k] = v
	}
	admin := devtest.Addr(t)
	env["SLUICE_ADMIN_ADDR"], env["AWS_SECRET_ACCESS_KEY"] = admin, "not-the-secret"
	bad := devtest.Start(t, "worker-bad", devtest.Binary(t, workerPkg), env)
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	devtest.Eventually(t, 20*time.Second, 50*time.Millisecond, func() bool {
		code, body := readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "cannot write")
	}, "the worker with a wrong secret does not say it cannot write")
	if got := metric(t, "http://"+admin+"/metrics", "sluice_worker_s3_writable"); got != 0 {
		t.Errorf("sluice_worker_s3_writable = %v on the worker with a wrong secret", got)
	}

	l, wait := runLoad(t, st.ingest, "key-a", "acme", 200, nil)
	wait()
	if len(l.accepted) != 200 {
		t.Fatalf("%d of 200 requests accepted", len(l.accepted))
	}
	_, js := devtest.JetStream(t, st.nats)
	s, err := js.Stream(t.Context(), stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	devtest.Eventually(t, 60*time.Second, 100*time.Millisecond, func() bool {
		info, err := s.Info(t.Context())
		return err == nil && info.State.Msgs == 0
	}, "the events did not all land")
	count, _, _ := readLines(t, st)
	for req, a := range l.accepted {
		for n := range a.events {
			if id := fmt.Sprintf("%s-%d", a.batchID, n); count[id] != 1 {
				t.Errorf("event %s of request %d stored %d times", id, req, count[id])
			}
		}
	}
	if code, body := readyz(); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz of the worker with a wrong secret: %d %s", code, body)
	}
	if got := metric(t, "http://"+admin+"/metrics", `sluice_worker_messages_total{outcome="acked"}`); got != 0 {
		t.Errorf("the worker with a wrong secret acked %v messages", got)
	}
	if got := metric(t, "http://"+st.workerEnv["SLUICE_ADMIN_ADDR"]+"/metrics", "sluice_worker_s3_writable"); got != 1 {
		t.Errorf("sluice_worker_s3_writable = %v on the healthy worker", got)
	}
	if n := strings.Count(bad.Output(), `"msg":"cannot write to S3`); n != 1 {
		t.Errorf("%d log lines about the refusal, want 1:\n%s", n, bad.Output())
	}
}
