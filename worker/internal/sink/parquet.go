package sink

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	pqgzip "github.com/parquet-go/parquet-go/compress/gzip"
	"github.com/parquet-go/parquet-go/compress/uncompressed"
	pqzstd "github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/sluice-ingest/sluice/pkg/envelope"
)

// ParquetRow is one row of a Parquet object: the fields of an NDJSON line.
// data is the event's JSON text in one JSON column, not typed columns
// inferred per object, so every object of a partition has the same schema;
// received_at is microseconds since the epoch, UTC, the precision every
// common engine reads.
type ParquetRow struct {
	ID         []byte `parquet:"id,string"`
	Tenant     string `parquet:"tenant,dict"`
	ReceivedAt int64  `parquet:"received_at,timestamp(microsecond:utc)"`
	Data       []byte `parquet:"data,json"`
}

// parquetRowGroupBytes ends a row group once its rows hold this many
// bytes of NDJSON lines. Engines split scans by row group and skip row
// groups by their statistics; an object (SLUICE_BATCH_MAX_BYTES, 64 MiB by
// default) fits in one, so each object is one row group unless that
// limit is raised past this. A variable so that tests can lower it.
var parquetRowGroupBytes = 128 << 20

// parquetRowsPerWrite is how many rows are handed to the writer at once.
const parquetRowsPerWrite = 1024

// parquetCodec is the page codec for a compression name.
func parquetCodec(compression string) (compress.Codec, error) {
	switch compression {
	case "gzip":
		return &pqgzip.Codec{Level: pqgzip.DefaultCompression}, nil
	case "zstd":
		return &pqzstd.Codec{Level: pqzstd.DefaultLevel, Concurrency: 1}, nil
	case "none":
		return &uncompressed.Codec{}, nil
	}
	return nil, fmt.Errorf("unknown compression %q (want gzip, zstd or none)", compression)
}

// parquetEncoder writes one Parquet file. Each object gets a new writer:
// parquet-go's Writer.Reset (v0.32.0) drops the column paths from the
// footer of the next file, so a reused writer would write other bytes, and
// a file engines cannot map to columns.
type parquetEncoder struct {
	w        *parquet.GenericWriter[ParquetRow]
	rows     []ParquetRow
	ids      []byte // the rows' ids, until the rows are written
	rowBytes int    // NDJSON bytes of the current row group
}

func newParquetEncoder(s *Sink, buf *bytes.Buffer) (encoder, func()) {
	w := parquet.NewGenericWriter[ParquetRow](buf,
		parquet.Compression(s.format.codec),
		// Version 1 data pages and PLAIN strings (parquet-go's default for
		// strings is DELTA_LENGTH_BYTE_ARRAY): every engine reads them,
		// some older readers do not read version 2 pages or the delta
		// encodings. zstd leaves no size difference to gain.
		parquet.DataPageVersion(1),
		parquet.DefaultEncodingFor(parquet.ByteArray, &parquet.Plain),
		// Minimum and maximum of a JSON text say nothing a query can use;
		// they are left out of the page index and the page statistics.
		parquet.SkipPageBounds("data"),
		parquet.SkipPageStatistics("data"),
	)
	return &parquetEncoder{w: w, rows: make([]ParquetRow, 0, parquetRowsPerWrite)}, func() {}
}

func (e *parquetEncoder) add(m envelope.Meta, index int, event, line []byte) error {
	start := len(e.ids)
	e.ids = append(e.ids, m.BatchID...)
	e.ids = append(e.ids, '-')
	e.ids = strconv.AppendInt(e.ids, int64(index), 10)
	e.rows = append(e.rows, ParquetRow{
		// A row keeps its id even when ids grows into a new array: the
		// old one is not written to again until the rows are written.
		ID:         e.ids[start:len(e.ids):len(e.ids)],
		Tenant:     m.Tenant,
		ReceivedAt: m.ReceivedAt.UnixMicro(),
		Data:       event,
	})
	e.rowBytes += len(line)
	if len(e.rows) == cap(e.rows) || e.rowBytes >= parquetRowGroupBytes {
		return e.writeRows()
	}
	return nil
}

// writeRows hands the buffered rows to the writer, and ends the row group
// when it is full.
func (e *parquetEncoder) writeRows() error {
	if _, err := e.w.Write(e.rows); err != nil {
		return fmt.Errorf("write parquet rows: %w", err)
	}
	clear(e.rows)
	e.rows, e.ids = e.rows[:0], e.ids[:0]
	if e.rowBytes >= parquetRowGroupBytes {
		if err := e.w.Flush(); err != nil {
			return fmt.Errorf("write parquet row group: %w", err)
		}
		e.rowBytes = 0
	}
	return nil
}

func (e *parquetEncoder) finish() error {
	if len(e.rows) > 0 {
		if err := e.writeRows(); err != nil {
			return err
		}
	}
	if err := e.w.Close(); err != nil {
		return fmt.Errorf("close parquet file: %w", err)
	}
	return nil
}
