package decode

import (
	"github.com/sluice-ingest/sluice/client/apierror"
	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

// The body shapes: which JSON bodies carry events, and where. These rules
// drive the lexer (body.Lexer), which copies the body compact to out, and
// turn what it copied into one line per event.

type keySet uint8

const (
	keyEvents keySet = 1 << iota
	keyData
	keyMeta // "version" or "token" of the classic collection
	keyOther
)

// envelope is what the shapes note while the lexer reads the body: the
// top-level object's keys (and which of "events" and "data" came twice),
// and the array of events last read: start and end in out of its first
// MaxEvents elements, how many it holds, and the first one that is not an
// object.
type envelope struct {
	keys       keySet
	twice      keySet
	haveArray  bool
	arrayField string
	spans      []int
	count      int
	bad        int
	badKind    string
}

// jsonBody reads a body in one of the JSON shapes: a bare array of events,
// {"events":[...]}, the classic {"version","token","data":[...]}, or one
// event object.
func (st *state) jsonBody() error {
	c, ok := st.SkipSpace()
	if !ok {
		if err := st.Failed(); err != nil {
			return err
		}
		return body.ErrEmpty
	}
	switch {
	case c == '[':
		if err := st.eventsArray(1, "", true); err != nil {
			return err
		}
		if err := st.end(); err != nil {
			return err
		}
		return st.emitEvents("")
	case c == '{':
		if err := st.topObject(); err != nil {
			return err
		}
		if err := st.end(); err != nil {
			return err
		}
		return st.classify()
	case kind(c) != "":
		return body.Errorf(apierror.InvalidBody, "body must be a JSON object or an array of objects, got %s", kind(c))
	}
	return st.Syntax("invalid character %s at the start of the body", body.QuoteByte(c))
}

// classify decides what the top-level object was: the wrapper when its only
// key is "events", the classic collection when it has "data" and nothing but
// "version" and "token" beside it, otherwise a single event. A wrapper or
// collection whose array key comes twice is refused (which array would be
// the events?); an event may repeat any key, as JSON allows.
func (st *state) classify() error {
	var field string
	switch {
	case st.keys == keyEvents:
		field = "events"
	case st.keys&keyData != 0 && st.keys&^(keyData|keyMeta) == 0:
		field = "data"
	default:
		st.out = append(st.out, '\n')
		st.events = 1
		return nil
	}
	if st.twice != 0 {
		return body.Errorf(apierror.InvalidBody, "key %q appears twice", field)
	}
	return st.emitEvents(field)
}

// emitEvents turns out, which holds the compact body, into one line per
// element of the array of events, moving each element down in place.
func (st *state) emitEvents(field string) error {
	lim := st.d.lim
	switch {
	case !st.haveArray || st.arrayField != field:
		return body.Errorf(apierror.InvalidBody, "%q must be an array of event objects", field)
	case st.bad >= 0:
		return body.Errorf(apierror.InvalidEvent, "%s: each event must be a JSON object, got %s", elementName(field, st.bad), st.badKind)
	case st.count > lim.MaxEvents:
		return tooManyEvents(lim.MaxEvents)
	case st.count == 0:
		return body.Errorf(apierror.NoEvents, "request carries no events")
	}
	// Each element starts after the '[' or ',' before it, so the write
	// position never passes the start of the element being moved.
	w := 0
	for i := 0; i < len(st.spans); i += 2 {
		w += copy(st.out[w:], st.out[st.spans[i]:st.spans[i+1]])
		st.out[w] = '\n'
		w++
	}
	st.out = st.out[:w]
	st.events = st.count
	return nil
}

// ndjsonBody reads one event object per line; blank lines are skipped.
func (st *state) ndjsonBody() error {
	lim := st.d.lim
	blank := true
	for st.pos.line = 1; ; {
		c, ok := st.SkipSpace()
		if !ok {
			break
		}
		if c == '\n' {
			st.Take(nil)
			st.pos.line++
			continue
		}
		blank = false
		if k := kind(c); c != '{' && k != "" {
			return body.Errorf(apierror.InvalidEvent, "line %d: each event must be a JSON object, got %s", st.pos.line, k)
		}
		if st.events == lim.MaxEvents {
			return tooManyEvents(lim.MaxEvents)
		}
		if err := st.Value(&st.out, 0); err != nil {
			return err
		}
		st.out = append(st.out, '\n')
		st.events++
		if c, ok = st.SkipSpace(); ok && c != '\n' {
			return st.Syntax("invalid character %s after the event (one event per line)", body.QuoteByte(c))
		}
	}
	if err := st.Failed(); err != nil {
		return err
	}
	if blank {
		return body.ErrEmpty
	}
	return nil
}

// end checks that nothing but whitespace follows the body's value, reading
// to the end so a truncated or corrupt compressed stream is noticed.
func (st *state) end() error {
	if c, ok := st.SkipSpace(); ok {
		return st.Syntax("unexpected %s after the JSON value (send several events as an array, or as application/x-ndjson)", body.QuoteByte(c))
	}
	if err := st.Failed(); err != nil {
		return err
	}
	return nil
}

// eventsArray reads an array whose elements are events, writing it compact
// to out and noting where each element is. When strict (the array is the
// body), a non-object element or one too many ends decoding at once;
// otherwise (the array is a value in the top-level object, which may turn
// out to be an event itself) they are noted for emitEvents.
func (st *state) eventsArray(depth int, field string, strict bool) error {
	lim := st.d.lim
	st.spans, st.count, st.bad = st.spans[:0], 0, -1
	st.haveArray, st.arrayField, st.pos.field = true, field, field
	if empty, err := st.Open(&st.out, depth, ']'); empty || err != nil {
		return err
	}
	for {
		c, ok := st.SkipSpace()
		if !ok {
			return st.Ended("inside an array")
		}
		st.pos.index = st.count
		if k := kind(c); c != '{' && k != "" {
			if strict {
				return body.Errorf(apierror.InvalidEvent, "%s: each event must be a JSON object, got %s", elementName(field, st.count), k)
			}
			if st.bad < 0 {
				st.bad, st.badKind = st.count, k
			}
		}
		if strict && st.count == lim.MaxEvents {
			return tooManyEvents(lim.MaxEvents)
		}
		start := len(st.out)
		if err := st.Value(&st.out, depth); err != nil {
			return err
		}
		if st.count < lim.MaxEvents {
			st.spans = append(st.spans, start, len(st.out))
		}
		st.count++
		done, err := st.Next(&st.out, ']')
		if err != nil {
			return err
		}
		if done {
			st.pos.index = -1
			return nil
		}
	}
}

// topObject reads the body's own object, noting its keys and reading its
// "events" and "data" arrays as arrays of events.
func (st *state) topObject() error {
	if empty, err := st.Open(&st.out, 1, '}'); empty || err != nil {
		return err
	}
	for {
		start := len(st.out)
		if err := st.Key(&st.out, false); err != nil {
			return err
		}
		if err := st.topValue(st.out[start : len(st.out)-1]); err != nil { // the key as sent, without its colon
			return err
		}
		if done, err := st.Next(&st.out, '}'); done || err != nil {
			return err
		}
	}
}

// topValue reads the value of key (quoted, as sent) in the body's object.
func (st *state) topValue(key []byte) error {
	var k keySet
	field := ""
	switch string(key) { // no allocation: the conversion is only compared
	case `"events"`:
		k, field = keyEvents, "events"
	case `"data"`:
		k, field = keyData, "data"
	case `"version"`, `"token"`:
		k = keyMeta
	default:
		k = keyOther
	}
	if field != "" && st.keys&k != 0 {
		st.twice |= k
	}
	st.keys |= k
	if c, ok := st.SkipSpace(); ok && c == '[' && field != "" {
		return st.eventsArray(2, field, false)
	}
	return st.Value(&st.out, 1)
}

// kind names the JSON value that starts with c, or "" when none does.
func kind(c byte) string {
	switch {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || '0' <= c && c <= '9':
		return "a number"
	}
	return ""
}
