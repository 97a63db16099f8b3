package jsonx

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

var samples = []string{"", "plain id", `odd "key" <&> é` + "\n", "\x00\x01\b\f\t\r\x1f\x7f", "caf\xe9 \xff\xfe", "\u2028\u2029 😀", `\/`}

// Marshal writes what encoding/json.Marshal writes, from a string or bytes.
func TestMarshalIsEncodingJSON(t *testing.T) {
	for _, s := range samples {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s, Marshal); string(got) != string(want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
		if got := AppendString(nil, []byte(s), Marshal); string(got) != string(want) {
			t.Errorf("%q as bytes: got %s, want %s", s, got, want)
		}
	}
}

func TestMinimal(t *testing.T) {
	for s, want := range map[string]string{
		"a<b>&c é 😀\u2028": `"a<b>&c é 😀` + "\u2028" + `"`,
		"\"\\\n\r\t":       `"\"\\\n\r\t"`,
		"\b\f\x00\x1f\x7f": `"\u0008\u000c\u0000\u001f` + "\x7f" + `"`,
	} {
		if got := AppendString(nil, s, Minimal); string(got) != want {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
}

func TestNoAllocation(t *testing.T) {
	dst := make([]byte, 0, 256)
	b := []byte(samples[4] + samples[5])
	if n := testing.AllocsPerRun(100, func() {
		_ = AppendString(dst, b, Marshal)
		_ = AppendString(dst, samples[2], Minimal)
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// FuzzAppendString checks both escapings against encoding/json, and that
// Minimal may be applied to any pieces of a string.
func FuzzAppendString(f *testing.F) {
	for _, s := range samples {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, s string, cut int) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, []byte(s), Marshal); string(got) != string(want) {
			t.Fatalf("Marshal %q: got %s, want %s", s, got, want)
		}
		if !utf8.ValidString(s) {
			return
		}
		got := AppendString(nil, s, Minimal)
		var back string
		if err := json.Unmarshal(got, &back); err != nil || back != s {
			t.Fatalf("Minimal %q: %s reads back as %q, %v", s, got, back, err)
		}
		cut = min(max(cut, 0), len(s))
		pieces := AppendEscaped(AppendEscaped([]byte{'"'}, s[:cut], Minimal), s[cut:], Minimal)
		if string(pieces)+`"` != string(got) {
			t.Fatalf("Minimal %q cut at %d: %s, whole %s", s, cut, pieces, got)
		}
	})
}
