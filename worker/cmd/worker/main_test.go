package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseSettings(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	s, err := parseSettings(nil, env(map[string]string{"SLUICE_S3_BUCKET": "b"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.workers != 4 || s.maxInflightBytes != 256<<20 || s.ackWait != 30*time.Second || s.maxDeliver != 20 || s.partSize != 16<<20 ||
		s.nats.DLQMaxBytes != 1<<30 || s.nats.DLQMaxAge != 0 || s.format != "ndjson" || s.compression != "" {
		t.Errorf("defaults: %+v", s)
	}
	for _, tc := range []struct{ name, value string }{
		{"SLUICE_WORKERS", "0"},
		{"SLUICE_MAX_INFLIGHT_BYTES", "lots"},
		{"SLUICE_MULTIPART_THRESHOLD", "1MiB"},
		{"SLUICE_ACK_WAIT", "1s"},
		{"SLUICE_MAX_DELIVER", "1"},
		{"SLUICE_COMPRESSION", "brotli"},
		{"SLUICE_FORMAT", "csv"},
		{"SLUICE_DLQ_MAX_BYTES", "lots"},
		{"SLUICE_DLQ_MAX_AGE", "-1h"},
	} {
		_, err := parseSettings(nil, env(map[string]string{"SLUICE_S3_BUCKET": "b", tc.name: tc.value}), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s=%s: err = %v, want one naming the variable", tc.name, tc.value, err)
		}
	}
	if _, err := parseSettings(nil, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "SLUICE_S3_BUCKET") {
		t.Errorf("no bucket: err = %v", err)
	}
}
