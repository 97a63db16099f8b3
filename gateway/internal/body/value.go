package body

// The grammar of values: Value reads any value, copying it to dst in its
// compact form (strings and numbers exactly as sent, whitespace between
// tokens dropped) unless dst is nil. Open, Key and Next are its steps, for
// callers that read some containers themselves (body shapes, a schema).

// Value reads any JSON value inside a container at depth (0 at the body's
// root).
func (l *Lexer) Value(dst *[]byte, depth int) error {
	c, ok := l.nonSpace()
	if !ok {
		c, ok = l.skipSpace()
	}
	if !ok {
		return l.Ended("where a value was expected")
	}
	switch c {
	case '{':
		return l.object(dst, depth+1)
	case '[':
		return l.array(dst, depth+1)
	case '"':
		return l.Str(dst, false)
	case 't':
		return l.Literal(dst, "true")
	case 'f':
		return l.Literal(dst, "false")
	case 'n':
		return l.Literal(dst, "null")
	}
	if c == '-' || isDigit(c) {
		return l.Number(dst)
	}
	return l.Syntax("invalid character %s where a value was expected", QuoteByte(c))
}

func (l *Lexer) object(dst *[]byte, depth int) error {
	if empty, err := l.Open(dst, depth, '}'); empty || err != nil {
		return err
	}
	for {
		if err := l.Key(dst, false); err != nil {
			return err
		}
		if err := l.Value(dst, depth); err != nil {
			return err
		}
		if done, err := l.Next(dst, '}'); done || err != nil {
			return err
		}
	}
}

func (l *Lexer) array(dst *[]byte, depth int) error {
	if empty, err := l.Open(dst, depth, ']'); empty || err != nil {
		return err
	}
	for {
		if err := l.Value(dst, depth); err != nil {
			return err
		}
		if done, err := l.Next(dst, ']'); done || err != nil {
			return err
		}
	}
}

// Key reads an object's key and the colon after it: as sent, it copies
// both; decoded, it appends the key's text alone.
func (l *Lexer) Key(dst *[]byte, decoded bool) error {
	c, ok := l.nonSpace()
	if !ok {
		c, ok = l.skipSpace()
	}
	if !ok {
		return l.Ended("inside an object")
	}
	if c != '"' {
		return l.Syntax("invalid character %s where an object key was expected", QuoteByte(c))
	}
	if err := l.Str(dst, decoded); err != nil {
		return err
	}
	if c, ok = l.nonSpace(); !ok {
		c, ok = l.skipSpace()
	}
	if !ok {
		return l.Ended("inside an object")
	}
	if c != ':' {
		return l.Syntax("invalid character %s after an object key (want :)", QuoteByte(c))
	}
	if decoded {
		dst = nil
	}
	l.Take(dst)
	return nil
}

// Open reads the opening bracket of a container at depth, the next byte;
// empty reports that the closing one followed, and was read too.
func (l *Lexer) Open(dst *[]byte, depth int, closing byte) (empty bool, err error) {
	if depth > l.MaxDepth {
		return false, l.hooks.TooDeep()
	}
	l.Take(dst)
	c, ok := l.nonSpace()
	if !ok {
		c, ok = l.skipSpace()
	}
	if !ok {
		return false, l.Ended("inside " + container(closing))
	}
	if c == closing {
		l.Take(dst)
		return true, nil
	}
	return false, nil
}

// Next reads what follows a member of a container: a comma, or the
// closing bracket (done).
func (l *Lexer) Next(dst *[]byte, closing byte) (done bool, err error) {
	c, ok := l.nonSpace()
	if !ok {
		c, ok = l.skipSpace()
	}
	if !ok {
		return false, l.Ended("inside " + container(closing))
	}
	if c != ',' && c != closing {
		return false, l.Syntax("invalid character %s in %s (want , or %c)", QuoteByte(c), container(closing), closing)
	}
	l.Take(dst)
	return c == closing, nil
}

func container(closing byte) string {
	if closing == '}' {
		return "an object"
	}
	return "an array"
}
