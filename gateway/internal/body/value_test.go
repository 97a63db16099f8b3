package body

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/sluice-ingest/sluice/client/apierror"
)

// plainHooks runs the lexer without a decoding around it: out grows
// (doubling) without a budget, read errors are reported as they are, and
// positions are byte offsets.
type plainHooks struct {
	l   *Lexer
	out []byte
}

func (h *plainHooks) Grow(need int) error {
	if need > cap(h.out) {
		h.out = append(make([]byte, 0, max(need, 2*cap(h.out))), h.out...)
	}
	return nil
}

func (h *plainHooks) ReadError(err error) *Error {
	return Errorf(apierror.MalformedBody, "read: %v", err)
}

func (h *plainHooks) At(offset int64) string { return fmt.Sprintf("byte %d", offset) }

func (h *plainHooks) TooDeep() *Error {
	return Errorf(apierror.TooDeep, "%s: objects and arrays nested deeper than the limit of %d levels", h.At(h.l.Offset()), h.l.MaxDepth)
}

// parseValue runs the lexer alone over one JSON value and what follows
// it, reading through a small window one byte at a time when oneByte.
func parseValue(in []byte, oneByte bool) ([]byte, error) {
	var src io.Reader = bytes.NewReader(in)
	if oneByte {
		src = iotest.OneByteReader(src)
	}
	l := &Lexer{}
	h := &plainHooks{l: l}
	l.Reset(make([]byte, 8), src, h)
	l.MaxDepth = 32
	if err := l.Value(&h.out, 0); err != nil {
		return nil, err
	}
	if c, ok := l.SkipSpace(); ok {
		return nil, l.Syntax("unexpected %s after the value", QuoteByte(c))
	}
	if err := l.Failed(); err != nil {
		return nil, err
	}
	return h.out, nil
}

// FuzzGrammar checks the lexer's grammar of values: it
// accepts exactly what encoding/json accepts (when valid UTF-8 and within
// the depth limit), and its output is encoding/json's compact form.
func FuzzGrammar(f *testing.F) {
	for _, s := range []string{`{"a":[1,-0.5e+3,true,false,null,"\u00e9\n"]}`, ` [ ] `, `"x"`, `01`, `1.`,
		`{"a" 1}`, `[1,]`, `"\x"`, "\"\xff\"", `{"a":{"b":{"c":[[[[]]]]}}}`, `-`, `nul`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := parseValue(in, false)
		slow, slowErr := parseValue(in, true)
		if (err == nil) != (slowErr == nil) || !bytes.Equal(out, slow) {
			t.Fatalf("%q: the window's size changed the answer: %v / %v", in, err, slowErr)
		}
		valid := json.Valid(in) && utf8.Valid(in) && depth(in) <= 32
		if err != nil {
			if valid {
				t.Fatalf("refused %q, which is valid JSON: %v", in, err)
			}
			return
		}
		if !valid {
			t.Fatalf("accepted %q, which encoding/json rejects (or too deep)", in)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, in); err != nil || !bytes.Equal(compact.Bytes(), out) {
			t.Fatalf("%q: output %q, want %q", in, out, compact.Bytes())
		}
	})
}

// depth is the nesting of a valid JSON text, outside strings.
func depth(in []byte) int {
	d, most, inStr, esc := 0, 0, false, false
	for _, c := range in {
		switch {
		case inStr && esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case inStr && c == '"':
			inStr = false
		case inStr:
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			d++
			most = max(most, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return most
}

func TestGrammarErrors(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{"a" 1}`, `malformed_body: byte 5: invalid character '1' after an object key (want :)`},
		{`[1,]`, `malformed_body: byte 3: invalid character ']' where a value was expected`},
		{`[1`, `malformed_body: byte 2: body ends inside an array`},
		{"\"\xff\"", `malformed_body: byte 1: invalid UTF-8 in a string`},
		{fmt.Sprintf("%s%s", bytes.Repeat([]byte("["), 33), bytes.Repeat([]byte("]"), 33)),
			`too_deep: byte 32: objects and arrays nested deeper than the limit of 32 levels`},
	} {
		_, err := parseValue([]byte(tt.in), false)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q: got %v, want %s", tt.in, err, tt.want)
		}
	}
}
