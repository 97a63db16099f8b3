package loadgen

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// Body returns `{"events":[...]}` with the given number of events of about
// eventBytes each, gzipped when gz is set.
func Body(events, eventBytes int, gz bool) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"events":[`)
	pad := strings.Repeat("x", max(0, eventBytes-60))
	for i := range events {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"seq":%d,"level":"info","msg":"load test event","pad":"%s"}`, i, pad)
	}
	b.WriteString(`]}`)
	if !gz {
		return b.Bytes(), nil
	}
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	if _, err := w.Write(b.Bytes()); err != nil {
		return nil, fmt.Errorf("gzip body: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("gzip body: %w", err)
	}
	return z.Bytes(), nil
}
