package body

import (
	"unicode/utf16"
	"unicode/utf8"
)

// Str reads the string that starts at the next byte (its quote), checking
// its escapes and its UTF-8, and appends it to dst unless nil: as sent,
// quotes and escapes included, or decoded to its text (a lone surrogate
// escape becomes U+FFFD, as encoding/json has it).
func (l *Lexer) Str(dst *[]byte, decoded bool) error {
	l.r++
	raw := dst != nil && !decoded
	if raw {
		*dst = append(*dst, '"')
	}
	for {
		in, i := l.in[:l.w], l.r
		for i < len(in) && plain[in[i]] {
			i++
		}
		if dst != nil {
			*dst = append(*dst, in[l.r:i]...)
		}
		l.r = i
		if l.r == l.w {
			if !l.fill() {
				return l.Ended("inside a string")
			}
			continue
		}
		switch c := l.in[l.r]; {
		case c == '"':
			l.r++
			if raw {
				*dst = append(*dst, '"')
			}
			return nil
		case c == '\\':
			if err := l.escape(dst, decoded); err != nil {
				return err
			}
		case c < 0x20:
			return l.Syntax("control character %s in a string (escape it)", QuoteByte(c))
		default:
			l.ensure(utf8.UTFMax)
			r, size := utf8.DecodeRune(l.in[l.r:l.w])
			if r == utf8.RuneError && size <= 1 {
				if !utf8.FullRune(l.in[l.r:l.w]) {
					return l.Ended("inside a UTF-8 character")
				}
				return l.Syntax("invalid UTF-8 in a string")
			}
			if dst != nil {
				*dst = append(*dst, l.in[l.r:l.r+size]...)
			}
			l.r += size
		}
	}
}

// plain is whether a string holds byte c as it is: not a quote, a
// backslash, a control character or part of a multi-byte character.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// unescaped is the byte each one-letter escape stands for.
var unescaped = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

func (l *Lexer) escape(dst *[]byte, decoded bool) error {
	if !l.ensure(2) {
		return l.Ended("inside a string escape")
	}
	e := l.in[l.r+1]
	if e != 'u' {
		if unescaped[e] == 0 {
			return l.Syntax("invalid escape \\%c in a string", e)
		}
		switch {
		case dst == nil:
		case decoded:
			*dst = append(*dst, unescaped[e])
		default:
			*dst = append(*dst, '\\', e)
		}
		l.r += 2
		return nil
	}
	if !l.ensure(6) {
		return l.Ended("inside a string escape")
	}
	r, ok := hex4(l.in[l.r+2 : l.r+6])
	if !ok {
		return l.Syntax("invalid \\u escape in a string")
	}
	if !decoded {
		if dst != nil {
			*dst = append(*dst, l.in[l.r:l.r+6]...)
		}
		l.r += 6
		return nil
	}
	l.r += 6
	if utf16.IsSurrogate(r) {
		// A pair is one character; anything else leaves U+FFFD for the
		// first half, and what follows is read on its own.
		pair := utf8.RuneError
		if l.ensure(6) && l.in[l.r] == '\\' && l.in[l.r+1] == 'u' {
			if r2, ok := hex4(l.in[l.r+2 : l.r+6]); ok {
				pair = utf16.DecodeRune(r, r2)
			}
		}
		r = pair
		if pair != utf8.RuneError {
			l.r += 6
		}
	}
	if dst != nil {
		*dst = utf8.AppendRune(*dst, r)
	}
	return nil
}

// hex4 reads the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c|0x20 && c|0x20 <= 'f':
			c = (c | 0x20) - 'a' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// Number reads a number, -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?,
// and appends it to dst, as sent, unless nil.
func (l *Lexer) Number(dst *[]byte) error {
	c, ok := l.peek()
	if c == '-' {
		l.Take(dst)
		c, ok = l.peek()
	}
	switch {
	case ok && c == '0':
		l.Take(dst)
	case ok && isDigit(c):
		l.digits(dst)
	default:
		return l.Syntax("invalid number: want a digit after -")
	}
	if c, ok = l.peek(); ok && c == '.' {
		l.Take(dst)
		if c, ok = l.peek(); !ok || !isDigit(c) {
			return l.Syntax("invalid number: want a digit after the decimal point")
		}
		l.digits(dst)
		c, ok = l.peek()
	}
	if ok && (c == 'e' || c == 'E') {
		l.Take(dst)
		if c, ok = l.peek(); ok && (c == '+' || c == '-') {
			l.Take(dst)
			c, ok = l.peek()
		}
		if !ok || !isDigit(c) {
			return l.Syntax("invalid number: want a digit in the exponent")
		}
		l.digits(dst)
	}
	return nil
}

func (l *Lexer) digits(dst *[]byte) {
	for {
		i := l.r
		for i < l.w && isDigit(l.in[i]) {
			i++
		}
		if dst != nil {
			*dst = append(*dst, l.in[l.r:i]...)
		}
		l.r = i
		if i < l.w || !l.fill() {
			return
		}
	}
}

// Literal reads lit (true, false or null), appending it to dst unless nil.
func (l *Lexer) Literal(dst *[]byte, lit string) error {
	for i := range len(lit) {
		c, ok := l.peek()
		if !ok {
			return l.Ended("inside " + lit)
		}
		if c != lit[i] {
			return l.Syntax("invalid character %s in literal %s", QuoteByte(c), lit)
		}
		l.r++
	}
	if dst != nil {
		*dst = append(*dst, lit...)
	}
	return nil
}

// Match consumes lit if the input goes on with it.
func (l *Lexer) Match(lit string) bool {
	if !l.ensure(len(lit)) || string(l.in[l.r:l.r+len(lit)]) != lit {
		return false
	}
	l.r += len(lit)
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
