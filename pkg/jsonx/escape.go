package jsonx

import "unicode/utf8"

// Escaping picks which characters a string's JSON form escapes.
type Escaping uint8

const (
	// Minimal escapes what JSON requires: the quote, the backslash and
	// the control characters (\n, \r and \t by name, the others as
	// \u00XX). Other bytes are copied as they are: the caller sees to
	// it that the string is valid UTF-8.
	Minimal Escaping = iota
	// Marshal writes the bytes encoding/json.Marshal writes: beyond
	// Minimal, \b and \f by name, <, > and & as \u003c, \u003e and
	// \u0026, U+2028 and U+2029 escaped, and invalid UTF-8 as \ufffd.
	Marshal
)

// AppendString appends s as a JSON string, quotes included.
func AppendString[S ~string | ~[]byte](dst []byte, s S, e Escaping) []byte {
	dst = append(dst, '"')
	dst = AppendEscaped(dst, s, e)
	return append(dst, '"')
}

// copied[e][c] is whether byte c is copied as it is under e; the bytes
// from 0x80 on are looked at as UTF-8 under Marshal.
var copied = func() (t [2][256]bool) {
	for c := range 256 {
		plain := c >= 0x20 && c != '"' && c != '\\'
		t[Minimal][c] = plain
		t[Marshal][c] = plain && c < utf8.RuneSelf && c != '<' && c != '>' && c != '&'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// AppendEscaped appends s escaped as in a JSON string, without quotes.
// Under Minimal each byte is escaped on its own, so s may be cut anywhere.
func AppendEscaped[S ~string | ~[]byte](dst []byte, s S, e Escaping) []byte {
	plain := &copied[e&1]
	for {
		i := 0
		for i < len(s) && plain[s[i]] {
			i++
		}
		dst = append(dst, s[:i]...)
		if i == len(s) {
			return dst
		}
		c, n := s[i], 1
		switch {
		case c >= utf8.RuneSelf: // Marshal only
			var r rune
			r, n = utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
			switch {
			case r == utf8.RuneError && n == 1:
				dst = append(dst, `\ufffd`...)
			case r == '\u2028' || r == '\u2029':
				dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			default:
				dst = append(dst, s[i:i+n]...)
			}
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == '\b' && e == Marshal:
			dst = append(dst, '\\', 'b')
		case c == '\f' && e == Marshal:
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		s = s[i+n:]
	}
}
