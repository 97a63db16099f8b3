package sink

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"testing"

	"github.com/parquet-go/parquet-go"
	pqzstd "github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// The alternative to the JSON data column, measured and not chosen: a
// column per field of the events (nested objects' fields by their dotted
// path), its type inferred from the object (boolean, int64, double or
// string; an array, or a field with two types in the object, is kept as
// JSON text). It is a
// benchmark only; see ParquetRow for why data is one JSON column.

// fieldKind is a top-level field's inferred type.
type fieldKind int

const (
	kindBool fieldKind = iota + 1
	kindInt
	kindFloat
	kindString
	kindJSON // objects, arrays, and fields of mixed types
)

func kindOf(v any) fieldKind {
	switch x := v.(type) {
	case bool:
		return kindBool
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return kindInt
		}
		return kindFloat
	case string:
		return kindString
	}
	return kindJSON
}

// flatten puts the fields of obj into out, those of nested objects under
// their dotted path.
func flatten(prefix string, obj map[string]any, out map[string]any) {
	for k, v := range obj {
		if o, ok := v.(map[string]any); ok {
			flatten(prefix+k+".", o, out)
			continue
		}
		out[prefix+k] = v
	}
}

// encodeTyped writes b's events as a Parquet file with inferred columns.
func encodeTyped(b *object.Object) ([]byte, int, error) {
	type event struct {
		m      envelope.Meta
		index  int
		fields map[string]any
	}
	var events []event
	kinds := map[string]fieldKind{}
	for _, it := range b.Items {
		err := envelope.EachEvent(it.Body, func(i int, ev []byte) error {
			d := json.NewDecoder(bytes.NewReader(ev))
			d.UseNumber()
			var obj map[string]any
			if err := d.Decode(&obj); err != nil {
				return err
			}
			fields := map[string]any{}
			flatten("", obj, fields)
			for k, v := range fields {
				switch have, want := kinds[k], kindOf(v); {
				case have == 0 || have == want:
					kinds[k] = want
				case (have == kindInt && want == kindFloat) || (have == kindFloat && want == kindInt):
					kinds[k] = kindFloat
				default:
					kinds[k] = kindJSON
				}
			}
			events = append(events, event{it.Meta, i, fields})
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
	}
	group := parquet.Group{
		"id":          parquet.String(),
		"tenant":      parquet.Encoded(parquet.String(), &parquet.RLEDictionary),
		"received_at": parquet.TimestampAdjusted(parquet.Microsecond, true),
	}
	names := make([]string, 0, len(kinds))
	for k, kind := range kinds {
		names = append(names, k)
		node := map[fieldKind]parquet.Node{
			kindBool: parquet.Leaf(parquet.BooleanType), kindInt: parquet.Int(64), kindFloat: parquet.Leaf(parquet.DoubleType),
			kindString: parquet.String(), kindJSON: parquet.JSON(),
		}[kind]
		group["data."+k] = parquet.Optional(node)
	}
	slices.Sort(names)
	schema := parquet.NewSchema("event", group)
	col := func(name string) int { c, _ := schema.Lookup(name); return c.ColumnIndex }
	idCol, tenantCol, atCol := col("id"), col("tenant"), col("received_at")
	cols := make([]int, len(names))
	for i, k := range names {
		cols[i] = col("data." + k)
	}
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, schema, parquet.Compression(&pqzstd.Codec{Level: pqzstd.DefaultLevel, Concurrency: 1}), parquet.DataPageVersion(1))
	rows := make([]parquet.Row, 0, parquetRowsPerWrite)
	flush := func() error {
		for i := range rows {
			slices.SortFunc(rows[i], func(a, b parquet.Value) int { return a.Column() - b.Column() })
		}
		_, err := w.WriteRows(rows)
		rows = rows[:0]
		return err
	}
	for _, ev := range events {
		row := parquet.Row{
			parquet.ByteArrayValue(strconv.AppendInt([]byte(ev.m.BatchID+"-"), int64(ev.index), 10)).Level(0, 0, idCol),
			parquet.ByteArrayValue([]byte(ev.m.Tenant)).Level(0, 0, tenantCol),
			parquet.Int64Value(ev.m.ReceivedAt.UnixMicro()).Level(0, 0, atCol),
		}
		for i, k := range names {
			v, ok := ev.fields[k]
			if !ok || v == nil {
				row = append(row, parquet.NullValue().Level(0, 0, cols[i]))
				continue
			}
			var pv parquet.Value
			switch kinds[k] {
			case kindBool:
				pv = parquet.BooleanValue(v.(bool))
			case kindInt:
				n, _ := v.(json.Number).Int64()
				pv = parquet.Int64Value(n)
			case kindFloat:
				f, _ := v.(json.Number).Float64()
				pv = parquet.DoubleValue(f)
			case kindString:
				pv = parquet.ByteArrayValue([]byte(v.(string)))
			default:
				j, _ := json.Marshal(v)
				pv = parquet.ByteArrayValue(j)
			}
			row = append(row, pv.Level(0, 1, cols[i]))
		}
		if rows = append(rows, row); len(rows) == cap(rows) {
			if err := flush(); err != nil {
				return nil, 0, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, 0, err
	}
	if err := w.Close(); err != nil {
		return nil, 0, err
	}
	return buf.Bytes(), len(events), nil
}

// BenchmarkEncodeTyped is BenchmarkEncode's parquet-zstd case with inferred
// columns instead of the JSON data column.
//
//	cd worker && go test -run '^$' -bench EncodeTyped -benchtime 10x -count 3 ./internal/sink/
func BenchmarkEncodeTyped(b *testing.B) {
	b50k := logObject(2000, 25)
	benchEncode(b, b50k, func() (int, int, error) {
		body, n, err := encodeTyped(b50k)
		return len(body), n, err
	})
}

// TestEncodeTypedReadsBack keeps the benchmark honest: its file holds every
// event, with the inferred columns.
func TestEncodeTypedReadsBack(t *testing.T) {
	b := logObject(20, 5)
	body, n, err := encodeTyped(b)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	if f.NumRows() != 100 || n != 100 {
		t.Fatalf("%d rows, %d events, want 100", f.NumRows(), n)
	}
	want := []string{"data.host", "data.http.duration_ms", "data.http.method", "data.http.path", "data.http.status", "data.level", "data.msg", "data.service", "data.tags", "data.trace_id", "data.ts", "data.user_id", "id", "received_at", "tenant"}
	var got []string
	for _, c := range f.Schema().Columns() {
		got = append(got, c[0])
	}
	if !slices.Equal(got, want) {
		t.Errorf("columns %v, want %v", got, want)
	}
	ids, err := parquet.Read[struct {
		ID string `parquet:"id"`
	}](bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range ndjsonLines(t, b) {
		var want line
		if err := json.Unmarshal([]byte(l), &want); err != nil {
			t.Fatal(err)
		}
		if ids[i].ID != want.ID {
			t.Fatalf("row %d: id %s, want %s", i, ids[i].ID, want.ID)
		}
	}
}
