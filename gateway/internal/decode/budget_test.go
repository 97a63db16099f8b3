package decode

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

// The bytes decodings in flight hold are bounded by MaxInflightBytes: with
// one body of 600 KiB held (its buffer grown to 1 MiB), the next is
// refused with ErrBusy (a 503), and decoded once the first is released. A
// zstd window past the pooled size is charged too, and a window over the
// decoded limit is refused at once.
func TestInflightBytesAreBounded(t *testing.T) {
	d := newDecoder(body.Limits{MaxDecodedBytes: 1 << 20, MaxInflightBytes: 1600 << 10})
	large := `[{"a":"` + strings.Repeat("x", 600<<10) + `"}]`
	big := `{"a":"` + strings.Repeat("y", 200<<10) + `"}` // more than one zstd block
	first, err := d.Decode(strings.NewReader(large), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Decode(strings.NewReader(large), "", ""); !errors.Is(err, body.ErrBusy) || body.ErrBusy.Status() != 503 {
		t.Fatalf("second body while the first is held: err = %v, want ErrBusy", err)
	}
	if _, err := d.Decode(strings.NewReader(streamZstd(t, big, 512<<10)), "", "zstd"); !errors.Is(err, body.ErrBusy) {
		t.Fatalf("a zstd body with a 512 KiB window while the first is held: err = %v, want ErrBusy", err)
	}
	first.Release()
	if d.budget.Used() != 0 {
		t.Fatalf("%d bytes still charged after the release", d.budget.Used())
	}
	for range 3 {
		b, err := d.Decode(strings.NewReader(large), "", "")
		if err != nil {
			t.Fatalf("after the release: %v", err)
		}
		b.Release()
	}
	if _, err := d.Decode(strings.NewReader(streamZstd(t, big, 2<<20)), "", "zstd"); err == nil || err.(*body.Error).Code != "decoded_too_large" {
		t.Fatalf("a zstd window over the decoded limit: err = %v, want decoded_too_large", err)
	}
	if b, err := d.Decode(strings.NewReader(streamZstd(t, big, 512<<10)), "", "zstd"); err != nil {
		t.Fatalf("a zstd window under the limit: %v", err)
	} else {
		b.Release()
	}
	if d.budget.Used() != 0 {
		t.Fatalf("%d bytes still charged", d.budget.Used())
	}
}

// streamZstd compresses s as a stream declaring the given window (s must
// be longer than a block, or the encoder writes a single-segment frame).
func streamZstd(t *testing.T, s string, window int) string {
	t.Helper()
	var b bytes.Buffer
	w, err := zstd.NewWriter(&b, zstd.WithWindowSize(window))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}
