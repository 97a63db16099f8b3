package objkey

import (
	"errors"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	hour := time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)
	tests := []struct {
		key  Key
		want string
	}{
		{Key{Prefix: "raw", Tenant: "acme", Hour: hour, FirstSeq: 1, LastSeq: 42, Ext: ExtGzip},
			"raw/tenant=acme/dt=2026-11-25/hour=07/00000000000000000001-00000000000000000042.ndjson.gz"},
		{Key{Prefix: "", Tenant: "a_b-1", Hour: hour, FirstSeq: 7, LastSeq: 7, Ext: ExtNone},
			"tenant=a_b-1/dt=2026-11-25/hour=07/00000000000000000007-00000000000000000007.ndjson"},
		{Key{Prefix: "x/y", Tenant: "t", Hour: hour, FirstSeq: 10, LastSeq: 20, Ext: ExtZstd},
			"x/y/tenant=t/dt=2026-11-25/hour=07/00000000000000000010-00000000000000000020.ndjson.zst"},
		{Key{Prefix: "raw", Tenant: "t", Hour: hour, FirstSeq: 1, LastSeq: 10, Stream: StreamTag(time.Date(2026, 12, 1, 20, 1, 21, 5, time.FixedZone("x", 3600))), Ext: ExtGzip},
			"raw/tenant=t/dt=2026-11-25/hour=07/00000000000000000001-00000000000000000010-20261201T190121.000000005Z.ndjson.gz"},
		{Key{Prefix: "raw", Tenant: "acme", Hour: hour, FirstSeq: 1, LastSeq: 42, Ext: ExtParquet},
			"raw/tenant=acme/dt=2026-11-25/hour=07/00000000000000000001-00000000000000000042.parquet"},
		{Key{Prefix: "raw", Tenant: "t", Hour: hour, FirstSeq: 3, LastSeq: 9, Stream: StreamTag(time.Date(2026, 12, 1, 20, 1, 21, 5, time.UTC)), Ext: ExtParquet},
			"raw/tenant=t/dt=2026-11-25/hour=07/00000000000000000003-00000000000000000009-20261201T200121.000000005Z.parquet"},
	}
	for _, tt := range tests {
		got := tt.key.String()
		if got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
		back, err := Parse(got)
		if err != nil {
			t.Fatalf("Parse(%q): %v", got, err)
		}
		if back != tt.key {
			t.Errorf("Parse(%q) = %+v, want %+v", got, back, tt.key)
		}
	}
}

func TestHourIsUTC(t *testing.T) {
	local := time.Date(2026, 1, 1, 1, 30, 0, 0, time.FixedZone("x", 3*3600))
	k := Key{Tenant: "t", Hour: local, Ext: ExtNone}
	if got, want := PartitionPrefix("", "t", local), "tenant=t/dt=2025-12-31/hour=22/"; got != want {
		t.Errorf("PartitionPrefix = %q, want %q (%s)", got, want, k)
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"tenant=a/dt=2026-01-01/hour=01/1-2.json",
		"tenant=a/dt=2026-01-01/hour=01/1-2.parquet.gz",
		"tenant=a/dt=2026-01-01/hour=01/1-2.ndjson.parquet",
		"tenant=a/dt=2026-13-01/hour=01/1-2.ndjson",
		"tenant=a/dt=2026-01-01/hour=1x/1-2.ndjson",
		"tenant=/dt=2026-01-01/hour=01/1-2.ndjson",
		"tenant=a/dt=2026-01-01/hour=01/2-1.ndjson",
		"tenant=a/dt=2026-01-01/hour=01/12.ndjson",
		"tenant=a/dt=2026-01-01/hour=01/1-2-x.ndjson",
		"tenant=a/dt=2026-01-01/hour=01/1-2-20261201T190121.5Z.ndjson",
		"tenant=a/dt=2026-01-01/hour=01/1-2-20261201T190121.000000005Z-3.ndjson",
		"a/b/c/d",
	} {
		if _, err := Parse(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) err = %v, want ErrMalformed", s, err)
		}
	}
}
