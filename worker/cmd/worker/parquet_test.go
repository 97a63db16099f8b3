package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go"
	"github.com/parquet-go/parquet-go"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/objkey"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

// sentEvent is one event the test published, as it must land.
type sentEvent struct {
	tenant     string
	receivedAt time.Time
	data       string
}

// TestParquetThroughTheWorker runs the worker with SLUICE_FORMAT=parquet
// against a real JetStream and versitygw: every published event lands once
// in a .parquet object of its tenant and hour, with its id, tenant,
// received_at (to the microsecond) and data; DuckDB, when it is installed,
// reads the bucket's files with hive partitioning and counts the same.
func TestParquetThroughTheWorker(t *testing.T) {
	n := devtest.NATS(t)
	srv := devtest.S3(t)
	_, js := devtest.JetStream(t, n)
	t.Setenv("AWS_ACCESS_KEY_ID", devstack.S3AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", devstack.S3SecretKey)
	t.Setenv("AWS_REGION", devstack.S3Region)
	env := map[string]string{
		"SLUICE_NATS_URL":      n.URL(),
		"SLUICE_ADMIN_ADDR":    devtest.Addr(t),
		"SLUICE_S3_ENDPOINT":   srv.Endpoint(),
		"SLUICE_S3_PATH_STYLE": "true",
		"SLUICE_S3_BUCKET":     devstack.S3Bucket,
		"SLUICE_S3_PREFIX":     "raw",
		"SLUICE_FORMAT":        "parquet",
		"SLUICE_BATCH_MAX_AGE": "300ms",
	}
	getenv := func(k string) string { return env[k] }
	s, err := parseSettings(nil, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.EnsureStreams(t.Context(), js, s.nats.Config()); err != nil {
		t.Fatal(err)
	}

	// Two tenants, two hours, requests of 1 to 5 events; events that need
	// escaping and nest.
	sent := map[string]sentEvent{}
	hours := []time.Time{time.Now().UTC().Add(-time.Hour), time.Now().UTC()}
	for req := range 40 {
		m := envelope.Meta{
			Tenant:     []string{"acme", "globex"}[req%2],
			BatchID:    envelope.NewBatchID(),
			ReceivedAt: hours[req/20].Add(time.Duration(req) * 1001 * time.Nanosecond),
			EventCount: req%5 + 1,
		}
		var body []byte
		for i := range m.EventCount {
			data := fmt.Sprintf(`{"req":%d,"i":%d,"msg":"say \"hi\"\t\u00e9","nested":{"ok":true,"n":[1,2.5]}}`, req, i)
			body = append(append(body, data...), '\n')
			sent[fmt.Sprintf("%s-%d", m.BatchID, i)] = sentEvent{m.Tenant, m.ReceivedAt, data}
		}
		msg := &nats.Msg{Subject: stream.EventsSubject(m.Tenant), Header: nats.Header{}, Data: body}
		m.SetHeaders(msg.Header)
		if _, err := js.PublishMsg(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() { done <- run(ctx, nil, getenv, io.Discard, &logs) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("worker: %v\n%s", err, logs.String())
		}
	}()

	dir := t.TempDir()
	var landed map[string]sink.ParquetRow
	devtest.Eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		landed = download(t, srv.Client(), dir)
		return len(landed) >= len(sent)
	}, "events did not land")
	if len(landed) != len(sent) {
		t.Fatalf("%d events landed, %d sent", len(landed), len(sent))
	}
	for id, want := range sent {
		got := landed[id]
		if got.Tenant != want.tenant || got.ReceivedAt != want.receivedAt.UnixMicro() || string(got.Data) != want.data {
			t.Errorf("event %s landed as {%s %s %s}, sent {%s %s %s}", id, got.Tenant,
				time.UnixMicro(got.ReceivedAt).UTC(), got.Data, want.tenant, want.receivedAt, want.data)
		}
	}

	t.Run("duckdb", func(t *testing.T) { duckdbCounts(t, dir, sent) })
}

// download copies every object of the bucket into dir under its key, checks
// it is a Parquet object, and returns the rows of all of them by id (an id
// seen twice fails the test).
func download(t *testing.T, c *s3.Client, dir string) map[string]sink.ParquetRow {
	t.Helper()
	rows := map[string]sink.ParquetRow{}
	out, err := c.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(devstack.S3Bucket), Prefix: aws.String("raw/")})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		key := aws.ToString(o.Key)
		k, err := objkey.Parse(key)
		if err != nil || k.Ext != objkey.ExtParquet {
			t.Fatalf("object %s: %+v, %v", key, k, err)
		}
		res, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(devstack.S3Bucket), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if ct := aws.ToString(res.ContentType); ct != "application/vnd.apache.parquet" {
			t.Errorf("%s: content type %q", key, ct)
		}
		objRows, err := parquet.Read[sink.ParquetRow](bytes.NewReader(body), int64(len(body)))
		if err != nil {
			t.Fatalf("read %s: %v", key, err)
		}
		if fmt.Sprint(len(objRows)) != res.Metadata[sink.MetaEventCount] {
			t.Errorf("%s: %d rows, metadata says %s", key, len(objRows), res.Metadata[sink.MetaEventCount])
		}
		for _, r := range objRows {
			if _, dup := rows[string(r.ID)]; dup {
				t.Fatalf("event %s landed twice", r.ID)
			}
			if at := time.UnixMicro(r.ReceivedAt).UTC(); r.Tenant != k.Tenant || !at.Truncate(time.Hour).Equal(k.Hour) {
				t.Errorf("%s holds an event of %s at %s", key, r.Tenant, at)
			}
			rows[string(r.ID)] = r
		}
		path := filepath.Join(dir, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return rows
}

// duckdbQuery is run by node with @duckdb/node-api: it prints the rows of
// the query in argv[2] as JSON.
const duckdbQuery = `
const { DuckDBInstance } = require('@duckdb/node-api');
(async () => {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  const reader = await conn.runAndReadAll(process.argv[2]);
  console.log(JSON.stringify(reader.getRowObjectsJson()));
})().catch((e) => { console.error(e.message); process.exit(1); });
`

// duckdbCounts queries the downloaded objects with DuckDB as docs/objects.md
// shows: per tenant, the events, their distinct ids, the events whose data
// DuckDB reads as a JSON object (a field of a nested object included), and
// the hive partitions (dt, hour) they are in. It skips when node or
// @duckdb/node-api is missing.
func duckdbCounts(t *testing.T, dir string, sent map[string]sentEvent) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("skipped: node is not on PATH")
	}
	script := filepath.Join(t.TempDir(), "query.cjs")
	if err := os.WriteFile(script, []byte(duckdbQuery), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(node, "-e", "require.resolve('@duckdb/node-api')").Run(); err != nil {
		t.Skip("skipped: node cannot load @duckdb/node-api (npm install --prefix DIR @duckdb/node-api, then set NODE_PATH=DIR/node_modules)")
	}
	files := filepath.ToSlash(filepath.Join(dir, "raw")) + "/tenant=*/dt=*/hour=*/*.parquet"
	query := `SELECT tenant, count(*) AS events, count(DISTINCT id) AS ids,
		count(*) FILTER (WHERE data->'$.nested'->>'$.ok' = 'true' AND json_type(data) = 'OBJECT') AS json_ok,
		count(DISTINCT dt || ' ' || hour) AS hours
	FROM read_parquet('` + files + `', hive_partitioning = true)
	GROUP BY tenant ORDER BY tenant`
	cmd := exec.Command(node, script, query)
	cmd.Dir = filepath.Dir(script)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("duckdb: %v: %s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("duckdb output %s: %v", out, err)
	}
	want := map[string]int{}
	for _, e := range sent {
		want[e.tenant]++
	}
	if len(got) != len(want) {
		t.Fatalf("duckdb: %s, want %d tenants", out, len(want))
	}
	for _, row := range got {
		n := fmt.Sprint(want[fmt.Sprint(row["tenant"])])
		if fmt.Sprint(row["events"]) != n || fmt.Sprint(row["ids"]) != n || fmt.Sprint(row["json_ok"]) != n || fmt.Sprint(row["hours"]) != "2" {
			t.Errorf("duckdb: %v, want %s events, ids and JSON objects in 2 hours", row, n)
		}
	}
	t.Logf("duckdb: %s", strings.TrimSpace(string(out)))
}
