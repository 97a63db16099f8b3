package manifest

import (
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// TestManifestAfterHandoverInGrace: a worker stores a tenant's hour and
// hands the partition over during the grace; the tenant then sends nothing
// more. The new owner, which never fetched a message of the hour, writes
// its manifest once the grace has passed, listing every event.
func TestManifestAfterHandoverInGrace(t *testing.T) {
	n, s3srv := devtest.NATS(t), devtest.S3(t)
	_, js := devtest.JetStream(t, n)
	if err := stream.EnsureStreams(t.Context(), js, stream.Config{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	hour := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	const grace = 5 * time.Minute
	clk := &clock{now: hour.Add(50 * time.Minute)}
	// Members are sorted by id and partition 0 goes to the first: "b"
	// owns it alone, then hands it to "a".
	first := startWorker(t, n, s3srv, "b", 1, grace, clk.Now)
	reads(t, first.p, "sluice-workers-p00")
	for i := range 10 {
		publishAt(t, js, "acme", hour.Add(50*time.Minute+time.Duration(i)*time.Second), i)
	}
	streamEmpty(t, js)

	clk.set(hour.Add(time.Hour + grace/2))
	first.tr.CloseHours(t.Context())
	if m := readManifests(t, s3srv.Client()); len(m) != 0 {
		t.Fatalf("manifest written within the grace: %v", keys(m))
	}
	second := startWorker(t, n, s3srv, "a", 1, grace, clk.Now)
	reads(t, second.p, "sluice-workers-p00")
	reads(t, first.p)

	clk.set(hour.Add(time.Hour + grace))
	first.tr.CloseHours(t.Context())
	if m := readManifests(t, s3srv.Client()); len(m) != 0 {
		t.Fatalf("manifest written by the former owner: %v", keys(m))
	}
	second.tr.CloseHours(t.Context())
	checkManifest(t, s3srv.Client(), onlyFirst(t, s3srv.Client(), "acme", hour), 20)
	if left := openKeys(t, js); left != 0 {
		t.Errorf("%d keys left in %s after the manifest", left, stream.HoursBucket)
	}
}

// TestManifestAfterOwnerKilled: a real worker binary stores a tenant's
// hour (its grace is long: it cannot close the hour) and is SIGKILLed.
// The partition's next owner, which never fetched a message of the hour,
// writes its manifest once the hour plus the grace has passed on its
// clock, listing every event.
func TestManifestAfterOwnerKilled(t *testing.T) {
	n, s3srv := devtest.NATS(t), devtest.S3(t)
	_, js := devtest.JetStream(t, n)
	const grace = 2 * time.Hour
	admin := devtest.Addr(t)
	killed := devtest.Start(t, "worker", devtest.Binary(t, "github.com/sluice-ingest/sluice/worker/cmd/worker"), map[string]string{
		"SLUICE_NATS_URL":       n.URL(),
		"SLUICE_S3_ENDPOINT":    s3srv.Endpoint(),
		"SLUICE_S3_PATH_STYLE":  "true",
		"SLUICE_S3_BUCKET":      devstack.S3Bucket,
		"SLUICE_S3_PREFIX":      "raw",
		"SLUICE_PARTITIONS":     "1",
		"SLUICE_BATCH_MAX_AGE":  "100ms",
		"SLUICE_ACK_WAIT":       memberTTL.String(),
		"SLUICE_MANIFEST_GRACE": grace.String(),
		"SLUICE_ADMIN_ADDR":     admin,
		"AWS_ACCESS_KEY_ID":     devstack.S3AccessKey,
		"AWS_SECRET_ACCESS_KEY": devstack.S3SecretKey,
		"AWS_REGION":            devstack.S3Region,
	})
	devtest.WaitReady(t, killed, "http://"+admin+"/readyz")
	at := time.Now().UTC()
	hour := at.Truncate(time.Hour)
	for i := range 10 {
		publishAt(t, js, "acme", at, i)
	}
	streamEmpty(t, js)
	devtest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool {
		return countLines(devtest.MustReadObjects(t, s3srv.Client(), devstack.S3Bucket, "raw/")) == 20
	}, "the hour's events not stored")
	killed.Kill()
	if m := readManifests(t, s3srv.Client()); len(m) != 0 {
		t.Fatalf("the killed worker wrote a manifest: %v", keys(m))
	}

	clk := &clock{now: hour.Add(time.Hour + grace)}
	next := startWorker(t, n, s3srv, "next", 1, grace, clk.Now)
	reads(t, next.p, "sluice-workers-p00")
	next.tr.CloseHours(t.Context())
	checkManifest(t, s3srv.Client(), onlyFirst(t, s3srv.Client(), "acme", hour), 20)
}
