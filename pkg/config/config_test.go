package config

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "512": 512, "64KiB": 64 << 10, "8MiB": 8 << 20, "1GB": 1e9, "2 gib": 2 << 30, "1.5KiB": 1536, "10b": 10,
		"9223372036854775807": math.MaxInt64, "8388607TiB": 8388607 << 40,
	} {
		got, err := ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "12XB", "1e3", "9223372036854775808", "8388608TiB", "99999999999TiB"} {
		if _, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) succeeded", in)
		}
	}
}

func TestPrecedenceAndErrors(t *testing.T) {
	var (
		addr string
		n    int
		size int64
		age  time.Duration
		mode string
		on   bool
	)
	declare := func(e map[string]string) *Set {
		s := New("x", env(e))
		s.String(&addr, "SLUICE_HTTP_ADDR", ":8080", "listen address")
		s.Int(&n, "SLUICE_MAX_EVENTS", 10, 1, "events")
		s.Bytes(&size, "SLUICE_MAX_BODY_BYTES", "1MiB", 1, "body")
		s.Duration(&age, "SLUICE_BATCH_MAX_AGE", time.Second, time.Millisecond, "age")
		s.Enum(&mode, "SLUICE_COMPRESSION", "gzip", []string{"gzip", "zstd", "none"}, "compression")
		s.Bool(&on, "SLUICE_PPROF", false, "pprof")
		return s
	}
	if err := declare(nil).Parse(nil, nil); err != nil {
		t.Fatal(err)
	}
	if addr != ":8080" || n != 10 || size != 1<<20 || age != time.Second || mode != "gzip" || on {
		t.Errorf("defaults not applied: %q %d %d %s %q %v", addr, n, size, age, mode, on)
	}
	err := declare(map[string]string{"SLUICE_HTTP_ADDR": ":1", "SLUICE_MAX_EVENTS": "5"}).Parse([]string{"-max-events", "7", "-pprof"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if addr != ":1" || n != 7 || !on {
		t.Errorf("env or flag not applied: %q %d %v", addr, n, on)
	}
	for e, want := range map[string]string{
		"SLUICE_MAX_EVENTS":     "SLUICE_MAX_EVENTS=\"0\": must be at least 1",
		"SLUICE_MAX_BODY_BYTES": "SLUICE_MAX_BODY_BYTES=\"0\": must be at least 1 bytes",
		"SLUICE_BATCH_MAX_AGE":  "SLUICE_BATCH_MAX_AGE=\"0\": must be at least 1ms",
		"SLUICE_COMPRESSION":    "SLUICE_COMPRESSION=\"0\": want one of gzip, zstd, none",
		"SLUICE_PPROF":          "SLUICE_PPROF=\"0x\"",
	} {
		val := "0"
		if e == "SLUICE_PPROF" {
			val = "0x"
		}
		err := declare(map[string]string{e: val}).Parse(nil, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to contain %q", e, err, want)
		}
	}
	if err := declare(nil).Parse([]string{"-max-events", "x"}, nil); err == nil || !strings.Contains(err.Error(), "max-events") {
		t.Errorf("bad flag: err = %v", err)
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	var a, b string
	s := New("x", env(nil))
	s.String(&a, "SLUICE_ONE", "1", "first")
	s.String(&b, "SLUICE_TWO", "", "second")
	if err := s.Parse([]string{"-h"}, &out); !errors.Is(err, ErrHelp) {
		t.Fatalf("err = %v, want ErrHelp", err)
	}
	for _, w := range []string{"SLUICE_ONE", "-one", "SLUICE_TWO", "second"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("usage lacks %q:\n%s", w, out.String())
		}
	}
}
