package body

import (
	"bytes"
	"encoding/json"
	"testing"
	"testing/iotest"
)

// lexStr reads the string in starts with, through a window of 8 bytes
// filled one byte at a time, or held whole; nilDst checks it only.
func lexStr(in []byte, decoded, whole, nilDst bool) ([]byte, int64, error) {
	l := &Lexer{}
	h := &plainHooks{l: l}
	if whole {
		l.ResetBytes(in, h)
	} else {
		l.Reset(make([]byte, 8), iotest.OneByteReader(bytes.NewReader(in)), h)
	}
	if c, ok := l.SkipSpace(); !ok || c != '"' {
		return nil, 0, l.Syntax("no string")
	}
	dst := &h.out
	if nilDst {
		dst = nil
	}
	err := l.Str(dst, decoded)
	return h.out, l.Offset(), err
}

func TestStrDecoded(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`"plain"`, "plain"},
		{`"\"\\\/\b\f\n\r\t"`, "\"\\/\b\f\n\r\t"},
		{`"\u00e9\u00E9 é"`, "éé é"},
		{`"\ud83d\ude00"`, "😀"},
		{`"\ud800"`, "\ufffd"},
		{`"\ud800\u0041"`, "\ufffdA"},
		{`"\udc00\ud800\udc00"`, "\ufffd\U00010000"},
	} {
		for _, whole := range []bool{false, true} {
			got, _, err := lexStr([]byte(tt.in), true, whole, false)
			if err != nil || string(got) != tt.want {
				t.Errorf("%s (whole %v): %q, %v; want %q", tt.in, whole, got, err, tt.want)
			}
		}
	}
}

// FuzzStr checks strings in every mode: the window, or none, changes
// nothing; as sent, an accepted string is the input's prefix and valid
// JSON; decoded, it is the text encoding/json reads from it. Inputs are
// kept short (16 windows), so that minimizing one stays quick.
func FuzzStr(f *testing.F) {
	for _, s := range []string{`"a"`, `"\u00e9\ud83d\ude00"`, `"\ud800"`, `"\ud800\u0041"`, `"\udc00\ud800"`,
		`"\x"`, "\"\xff\"", `"abc`, `"\/\b\f\n\r\t\"\\"`, "\"\xe2\x82", `"\u12g4"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 || in[0] != '"' || len(in) > 128 {
			return
		}
		raw, n, err := lexStr(in, false, false, false)
		var text []byte
		for _, mode := range [][3]bool{{false, true, false}, {true, false, false}, {true, true, false}, {false, false, true}} {
			out, m, merr := lexStr(in, mode[0], mode[1], mode[2])
			if (err == nil) != (merr == nil) || err == nil && m != n {
				t.Fatalf("%q: mode %v: %v at %d; as sent %v at %d", in, mode, merr, m, err, n)
			}
			switch {
			case mode[0] && text == nil:
				text = out
			case mode[0] && err == nil && !bytes.Equal(out, text):
				t.Fatalf("%q: decoded %q through the window, %q whole", in, text, out)
			}
		}
		if err != nil {
			return
		}
		if !bytes.Equal(raw, in[:n]) || !json.Valid(raw) {
			t.Fatalf("%q: as sent %q", in, raw)
		}
		var want string
		if err := json.Unmarshal(raw, &want); err != nil || string(text) != want {
			t.Fatalf("%q: decoded %q, encoding/json %q (%v)", in, text, want, err)
		}
	})
}
