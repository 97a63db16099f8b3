package sink

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/objkey"
	"github.com/sluice-ingest/sluice/worker/internal/object"
)

func parquetSink(t *testing.T, compression string) *Sink {
	t.Helper()
	sk, err := New(&countingS3{}, Config{Bucket: "b", Prefix: "raw", Format: FormatParquet, Compression: compression})
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

// ndjsonLines is what the NDJSON format writes for b: the lines a Parquet
// object's rows must match.
func ndjsonLines(t testing.TB, b *object.Object) []string {
	t.Helper()
	sk, err := New(&countingS3{}, Config{Bucket: "b", Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	obj, err := sk.Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	return devtest.Lines(obj.Body)
}

// line is an NDJSON line, decoded.
type line struct {
	ID         string          `json:"id"`
	Tenant     string          `json:"tenant"`
	ReceivedAt time.Time       `json:"received_at"`
	Data       json.RawMessage `json:"data"`
}

// TestParquetReadBack: every event of an object comes back from the Parquet
// object, in order, with the id, tenant, time and event of its NDJSON line;
// the file has the documented schema and codec.
func TestParquetReadBack(t *testing.T) {
	b := logObject(40, 25)
	want := ndjsonLines(t, b)
	for _, tc := range []struct{ compression, codec string }{{"", "ZSTD"}, {"zstd", "ZSTD"}, {"gzip", "GZIP"}, {"none", "UNCOMPRESSED"}} {
		obj, err := parquetSink(t, tc.compression).Encode(b)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(obj.Key, "-00000000000000000040.parquet") || !strings.HasSuffix(obj.StreamKey, testStream+objkey.ExtParquet) {
			t.Errorf("keys %s, %s", obj.Key, obj.StreamKey)
		}
		f, err := parquet.OpenFile(bytes.NewReader(obj.Body), int64(len(obj.Body)))
		if err != nil {
			t.Fatal(err)
		}
		schema := strings.Join(strings.Fields(f.Schema().String()), " ")
		if wantSchema := "message ParquetRow { required binary id (STRING); required binary tenant (STRING); " +
			"required int64 received_at (TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)); required binary data (JSON); }"; schema != wantSchema {
			t.Errorf("schema:\n%s\nwant\n%s", schema, wantSchema)
		}
		for _, rg := range f.Metadata().RowGroups {
			for _, c := range rg.Columns {
				if got := c.MetaData.Codec.String(); got != tc.codec {
					t.Errorf("compression %q: column %v codec %s, want %s", tc.compression, c.MetaData.PathInSchema, got, tc.codec)
				}
			}
		}
		rows, err := parquet.Read[ParquetRow](bytes.NewReader(obj.Body), int64(len(obj.Body)))
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(want) || obj.Events != len(want) {
			t.Fatalf("%d rows, %d events, want %d", len(rows), obj.Events, len(want))
		}
		for i, row := range rows {
			var l line
			if err := json.Unmarshal([]byte(want[i]), &l); err != nil {
				t.Fatal(err)
			}
			at := time.UnixMicro(row.ReceivedAt).UTC()
			if string(row.ID) != l.ID || row.Tenant != l.Tenant || !at.Equal(l.ReceivedAt.Truncate(time.Microsecond)) || string(row.Data) != string(l.Data) {
				t.Fatalf("row %d = {%s %s %s %s}, want the line %s", i, row.ID, row.Tenant, at, row.Data, want[i])
			}
		}
	}
}

// TestParquetSameMessagesSameBytes: the same messages give the same bytes,
// whatever order they arrived in, from a fresh encoder or one reused from
// the pool after another object; other messages give other bytes.
func TestParquetSameMessagesSameBytes(t *testing.T) {
	sk := parquetSink(t, "")
	encode := func(sk *Sink, b *object.Object) []byte {
		obj, err := sk.Encode(b)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Clone(obj.Body)
	}
	first := encode(sk, logObject(30, 7))
	other := encode(sk, logObject(31, 7)) // the pool's encoder has written another file
	if bytes.Equal(first, other) {
		t.Fatal("two objects give the same bytes")
	}
	shuffled := logObject(30, 7)
	slices.Reverse(shuffled.Items)
	if again := encode(sk, shuffled); !bytes.Equal(again, first) {
		t.Error("the same messages in another order, reused encoder: other bytes")
	}
	if fresh := encode(parquetSink(t, "zstd"), logObject(30, 7)); !bytes.Equal(fresh, first) {
		t.Error("the same messages, fresh sink: other bytes")
	}
}

// TestParquetRowGroups: an object past the row group size is written in
// several row groups, which read back as one sequence of rows.
func TestParquetRowGroups(t *testing.T) {
	defer func(n int) { parquetRowGroupBytes = n }(parquetRowGroupBytes)
	parquetRowGroupBytes = 64 << 10
	b := logObject(200, 10)
	want := ndjsonLines(t, b)
	obj, err := parquetSink(t, "").Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(obj.Body), int64(len(obj.Body)))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parquet.Read[ParquetRow](bytes.NewReader(obj.Body), int64(len(obj.Body)))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.RowGroups()); n < 5 {
		t.Errorf("%d row groups for %d bytes of lines, want at least 5", n, len(strings.Join(want, "\n")))
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(rows), len(want))
	}
	for i, row := range rows {
		var l line
		if err := json.Unmarshal([]byte(want[i]), &l); err != nil {
			t.Fatal(err)
		}
		if string(row.ID) != l.ID {
			t.Fatalf("row %d has id %s, want %s", i, row.ID, l.ID)
		}
	}
}

// TestParquetReceivedAtIsUTCMicros: a time in another zone is stored as
// the same instant, truncated to the microsecond.
func TestParquetReceivedAtIsUTCMicros(t *testing.T) {
	b := object.NewOpen(object.Limits{MaxBytes: 1 << 20, MaxEvents: 100, MaxAge: time.Hour})
	at := time.Date(2026, 12, 1, 21, 30, 0, 123456789, time.FixedZone("x", 2*3600))
	b.Add(object.Item{Meta: envelope.Meta{Tenant: "acme", BatchID: "r", ReceivedAt: at, EventCount: 1}, Seq: 1, Body: []byte(`{"a":1}` + "\n")}, at)
	obj, err := parquetSink(t, "").Encode(b.All(object.ReasonShutdown)[0])
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parquet.Read[ParquetRow](bytes.NewReader(obj.Body), int64(len(obj.Body)))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].ReceivedAt != time.Date(2026, 12, 1, 19, 30, 0, 123456000, time.UTC).UnixMicro() || string(rows[0].ID) != "r-0" {
		t.Errorf("rows %+v", rows)
	}
	if !strings.Contains(obj.Key, "/dt=2026-12-01/hour=19/") {
		t.Errorf("key %s", obj.Key)
	}
}

func TestFormatRejects(t *testing.T) {
	for _, cfg := range []Config{
		{Bucket: "b", Format: "csv"},
		{Bucket: "b", Format: FormatParquet, Compression: "brotli"},
		{Bucket: "b", Format: FormatNDJSON, Compression: "brotli"},
	} {
		if _, err := New(&countingS3{}, cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

// TestParquetPut: a Parquet object lands under its .parquet key with its
// content type and metadata; the same object encoded and put again is found
// stored (the 412 check); the partition's listing holds it for a Parquet
// sink and not for an NDJSON one.
func TestParquetPut(t *testing.T) {
	srv := devtest.S3(t)
	sk, err := New(srv.Client(), Config{Bucket: devstack.S3Bucket, Prefix: "pq", Format: FormatParquet})
	if err != nil {
		t.Fatal(err)
	}
	b := logObject(12, 3)
	obj, err := sk.Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	if key, err := sk.Put(t.Context(), obj); err != nil || key != obj.Key {
		t.Fatalf("put: %s, %v", key, err)
	}
	again, err := sk.Encode(logObject(12, 3))
	if err != nil {
		t.Fatal(err)
	}
	if key, err := sk.Put(t.Context(), again); err != nil || key != obj.Key {
		t.Fatalf("put the same object again: %s, %v", key, err)
	}
	head, err := srv.Client().HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(devstack.S3Bucket), Key: aws.String(obj.Key)})
	if err != nil {
		t.Fatal(err)
	}
	if ct := aws.ToString(head.ContentType); ct != "application/vnd.apache.parquet" || head.Metadata[MetaEventCount] != "36" || aws.ToInt64(head.ContentLength) != int64(len(obj.Body)) {
		t.Errorf("stored: content type %q, metadata %v, %d bytes", ct, head.Metadata, aws.ToInt64(head.ContentLength))
	}
	if keys, err := sk.Stored(t.Context(), "acme", b.Hour); err != nil || len(keys) != 1 || keys[0].String() != obj.Key {
		t.Errorf("parquet sink lists %v, %v", keys, err)
	}
	nd, err := New(srv.Client(), Config{Bucket: devstack.S3Bucket, Prefix: "pq"})
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := nd.Stored(t.Context(), "acme", b.Hour); err != nil || len(keys) != 0 {
		t.Errorf("ndjson sink lists %v, %v", keys, err)
	}
}
