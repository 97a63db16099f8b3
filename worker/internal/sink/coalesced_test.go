package sink

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// TestEncodeCoalescedMessage: the events of a coalesced message are written
// with their own request's batch id, index and received_at, in NDJSON and
// in Parquet, beside a message of one request.
func TestEncodeCoalescedMessage(t *testing.T) {
	at0 := time.Date(2026, 12, 1, 19, 30, 0, 123456000, time.UTC)
	at1 := at0.Add(7 * time.Millisecond)
	coalesced := envelope.Coalesce("acme", []envelope.Request{{Events: 2, ReceivedAt: at0}, {Events: 1, ReceivedAt: at1}})
	single := envelope.Meta{Tenant: "acme", BatchID: "single", ReceivedAt: at1, EventCount: 1}
	b := object.NewOpen(object.Limits{MaxBytes: 1 << 20, MaxEvents: 100, MaxAge: time.Hour})
	b.Add(object.Item{Meta: coalesced, Seq: 1, Body: []byte("{\"a\":0}\n{\"a\":1}\n{\"a\":2}\n"), Stream: testStream}, time.Now())
	b.Add(object.Item{Meta: single, Seq: 2, Body: []byte("{\"a\":3}\n"), Stream: testStream}, time.Now())
	bt := b.All(object.ReasonShutdown)[0]

	m := coalesced.BatchID
	want := []line{
		{ID: m + "-0-0", Tenant: "acme", ReceivedAt: at0, Data: json.RawMessage(`{"a":0}`)},
		{ID: m + "-0-1", Tenant: "acme", ReceivedAt: at0, Data: json.RawMessage(`{"a":1}`)},
		{ID: m + "-1-0", Tenant: "acme", ReceivedAt: at1, Data: json.RawMessage(`{"a":2}`)},
		{ID: "single-0", Tenant: "acme", ReceivedAt: at1, Data: json.RawMessage(`{"a":3}`)},
	}
	lines := ndjsonLines(t, bt)
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d: %q", len(lines), len(want), lines)
	}
	for i, s := range lines {
		var l line
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatal(err)
		}
		if l.ID != want[i].ID || l.Tenant != want[i].Tenant || !l.ReceivedAt.Equal(want[i].ReceivedAt) || string(l.Data) != string(want[i].Data) {
			t.Errorf("line %d = %s, want %+v", i, s, want[i])
		}
	}

	obj, err := parquetSink(t, "").Encode(bt)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parquet.Read[ParquetRow](bytes.NewReader(obj.Body), int64(len(obj.Body)))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(rows), len(want))
	}
	for i, row := range rows {
		if string(row.ID) != want[i].ID || row.ReceivedAt != want[i].ReceivedAt.UnixMicro() || string(row.Data) != string(want[i].Data) {
			t.Errorf("row %d = {%s %d %s}, want %+v", i, row.ID, row.ReceivedAt, row.Data, want[i])
		}
	}
}
