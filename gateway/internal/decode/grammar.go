package decode

import "unicode/utf8"

// parser is the JSON grammar: a hand-written validator that copies every
// token to out and drops the whitespace between them, so the output is the
// compact form of the input (strings and numbers exactly as sent). It
// checks what encoding/json checks plus UTF-8 and the depth limit. It knows
// nothing of events or body shapes: shapes.go drives it, and sets pos so
// its errors say which event they are in.
type parser struct {
	scanner
	maxDepth int
	pos      position
}

// value reads any JSON value at the given depth of its container.
func (p *parser) value(depth int) error {
	c, ok := p.skipSpace()
	if !ok {
		return p.ended("where a value was expected")
	}
	switch c {
	case '{':
		return p.object(depth + 1)
	case '[':
		return p.array(depth + 1)
	case '"':
		return p.str()
	case 't':
		return p.literal("true")
	case 'f':
		return p.literal("false")
	case 'n':
		return p.literal("null")
	}
	if c == '-' || isDigit(c) {
		return p.number()
	}
	return p.syntax("invalid character %s where a value was expected", quoteByte(c))
}

func (p *parser) object(depth int) error {
	if empty, err := p.open(depth, '}'); empty || err != nil {
		return err
	}
	for {
		if _, err := p.key(); err != nil {
			return err
		}
		if err := p.value(depth); err != nil {
			return err
		}
		if done, err := p.next('}'); done || err != nil {
			return err
		}
	}
}

// key reads an object's key and the colon after it, and returns the key as
// sent, quotes included (it stays valid until the next byte is copied).
func (p *parser) key() ([]byte, error) {
	c, ok := p.skipSpace()
	if !ok {
		return nil, p.ended("inside an object")
	}
	if c != '"' {
		return nil, p.syntax("invalid character %s where an object key was expected", quoteByte(c))
	}
	start := len(p.out)
	if err := p.str(); err != nil {
		return nil, err
	}
	if c, ok = p.skipSpace(); !ok {
		return nil, p.ended("inside an object")
	}
	if c != ':' {
		return nil, p.syntax("invalid character %s after an object key (want :)", quoteByte(c))
	}
	key := p.out[start:]
	p.take()
	return key, nil
}

func (p *parser) array(depth int) error {
	if empty, err := p.open(depth, ']'); empty || err != nil {
		return err
	}
	for {
		if err := p.value(depth); err != nil {
			return err
		}
		if done, err := p.next(']'); done || err != nil {
			return err
		}
	}
}

// open copies the opening bracket of a container at depth; empty reports
// that the closing one followed, and was copied too.
func (p *parser) open(depth int, closing byte) (empty bool, err error) {
	if depth > p.maxDepth {
		return false, p.tooDeep()
	}
	p.take()
	c, ok := p.skipSpace()
	if !ok {
		return false, p.ended("inside " + container(closing))
	}
	if c == closing {
		p.take()
		return true, nil
	}
	return false, nil
}

// next copies what follows a member of a container: a comma, or the
// closing bracket (done).
func (p *parser) next(closing byte) (done bool, err error) {
	c, ok := p.skipSpace()
	if !ok {
		return false, p.ended("inside " + container(closing))
	}
	if c != ',' && c != closing {
		return false, p.syntax("invalid character %s in %s (want , or %c)", quoteByte(c), container(closing), closing)
	}
	p.take()
	return c == closing, nil
}

func container(closing byte) string {
	if closing == '}' {
		return "an object"
	}
	return "an array"
}

// str copies a string, checking its escapes and its UTF-8.
func (p *parser) str() error {
	p.r++
	p.out = append(p.out, '"')
	for {
		i := p.r
		for i < p.w {
			if c := p.in[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
				break
			}
			i++
		}
		p.out = append(p.out, p.in[p.r:i]...)
		p.r = i
		if p.r == p.w {
			if !p.fill() {
				return p.ended("inside a string")
			}
			continue
		}
		switch c := p.in[p.r]; {
		case c == '"':
			p.r++
			p.out = append(p.out, '"')
			return nil
		case c == '\\':
			if err := p.escape(); err != nil {
				return err
			}
		case c < 0x20:
			return p.syntax("control character %s in a string (escape it)", quoteByte(c))
		default:
			p.ensure(utf8.UTFMax)
			r, size := utf8.DecodeRune(p.in[p.r:p.w])
			if r == utf8.RuneError && size <= 1 {
				if !utf8.FullRune(p.in[p.r:p.w]) {
					return p.ended("inside a UTF-8 character")
				}
				return p.syntax("invalid UTF-8 in a string")
			}
			p.out = append(p.out, p.in[p.r:p.r+size]...)
			p.r += size
		}
	}
}

func (p *parser) escape() error {
	if !p.ensure(2) {
		return p.ended("inside a string escape")
	}
	switch p.in[p.r+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		p.out = append(p.out, p.in[p.r:p.r+2]...)
		p.r += 2
		return nil
	case 'u':
		if !p.ensure(6) {
			return p.ended("inside a string escape")
		}
		for _, h := range p.in[p.r+2 : p.r+6] {
			if !isHex(h) {
				return p.syntax("invalid \\u escape in a string")
			}
		}
		p.out = append(p.out, p.in[p.r:p.r+6]...)
		p.r += 6
		return nil
	}
	return p.syntax("invalid escape \\%c in a string", p.in[p.r+1])
}

// number copies a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *parser) number() error {
	c, ok := p.peek()
	if c == '-' {
		p.take()
		c, ok = p.peek()
	}
	switch {
	case ok && c == '0':
		p.take()
	case ok && isDigit(c):
		p.digits()
	default:
		return p.syntax("invalid number: want a digit after -")
	}
	if c, ok = p.peek(); ok && c == '.' {
		p.take()
		if c, ok = p.peek(); !ok || !isDigit(c) {
			return p.syntax("invalid number: want a digit after the decimal point")
		}
		p.digits()
		c, ok = p.peek()
	}
	if ok && (c == 'e' || c == 'E') {
		p.take()
		if c, ok = p.peek(); ok && (c == '+' || c == '-') {
			p.take()
			c, ok = p.peek()
		}
		if !ok || !isDigit(c) {
			return p.syntax("invalid number: want a digit in the exponent")
		}
		p.digits()
	}
	return nil
}

func (p *parser) digits() {
	for {
		i := p.r
		for i < p.w && isDigit(p.in[i]) {
			i++
		}
		p.out = append(p.out, p.in[p.r:i]...)
		p.r = i
		if i < p.w || !p.fill() {
			return
		}
	}
}

func (p *parser) literal(lit string) error {
	for i := range len(lit) {
		c, ok := p.peek()
		if !ok {
			return p.ended("inside " + lit)
		}
		if c != lit[i] {
			return p.syntax("invalid character %s in literal %s", quoteByte(c), lit)
		}
		p.r++
	}
	p.out = append(p.out, lit...)
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'f' }
