package decode

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// Limits bound what one request may carry.
type Limits struct {
	MaxBodyBytes    int64 // on the wire
	MaxDecodedBytes int64 // after decompression
	MaxEvents       int
}

// Error is a refusal of client input: it maps to Status with a JSON body
// {"error": Code, "message": Message}.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Batch is a decoded request.
type Batch struct {
	// Body holds the events as NDJSON, each event compacted onto one line.
	Body []byte
	// Events is the number of events (lines) in Body.
	Events int
}

// Decode reads a request body of the given Content-Type and
// Content-Encoding. Every error it returns is an *Error.
func Decode(r io.Reader, contentType, contentEncoding string, lim Limits) (Batch, error) {
	ndjson, err := mediaType(contentType)
	if err != nil {
		return Batch{}, err
	}
	raw, err := readLimited(r, lim.MaxBodyBytes, "body_too_large", "request body exceeds %d bytes")
	if err != nil {
		return Batch{}, err
	}
	data, err := decompress(raw, contentEncoding, lim.MaxDecodedBytes)
	if err != nil {
		return Batch{}, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return Batch{}, errorf(http.StatusBadRequest, "empty_body", "request body is empty")
	}
	b := Batch{Body: make([]byte, 0, len(data)+16)}
	if ndjson {
		err = b.addNDJSON(data, lim)
	} else {
		err = b.addJSON(data, lim)
	}
	if err != nil {
		return Batch{}, err
	}
	if b.Events == 0 {
		return Batch{}, errorf(http.StatusBadRequest, "no_events", "request carries no events")
	}
	return b, nil
}

func mediaType(ct string) (ndjson bool, err error) {
	if ct == "" {
		return false, nil
	}
	mt, _, perr := mime.ParseMediaType(ct)
	if perr != nil {
		return false, errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "cannot parse Content-Type %q", ct)
	}
	switch mt {
	case "application/json", "text/plain":
		return false, nil
	case "application/x-ndjson", "application/jsonl", "application/ndjson", "application/json-seq":
		return true, nil
	}
	return false, errorf(http.StatusUnsupportedMediaType, "unsupported_media_type",
		"Content-Type %q is not accepted; send application/json or application/x-ndjson", mt)
}

func readLimited(r io.Reader, max int64, code, format string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, code, format, max)
		}
		return nil, errorf(http.StatusBadRequest, "malformed_body", "reading body: %v", err)
	}
	if int64(len(b)) > max {
		return nil, errorf(http.StatusRequestEntityTooLarge, code, format, max)
	}
	return b, nil
}

func decompress(raw []byte, encoding string, maxDecoded int64) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		if int64(len(raw)) > maxDecoded {
			return nil, errorf(http.StatusRequestEntityTooLarge, "decoded_too_large", "decoded body exceeds %d bytes", maxDecoded)
		}
		return raw, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "malformed_body", "gzip: %v", err)
		}
		b, err := readLimited(zr, maxDecoded, "decoded_too_large", "decoded body exceeds %d bytes")
		var de *Error
		if errors.As(err, &de) && de.Code == "malformed_body" {
			return nil, errorf(http.StatusBadRequest, "malformed_body", "gzip: %s", strings.TrimPrefix(de.Message, "reading body: "))
		}
		return b, err
	}
	return nil, errorf(http.StatusUnsupportedMediaType, "unsupported_encoding",
		"Content-Encoding %q is not accepted; send gzip or identity", encoding)
}

func (b *Batch) addEvent(ev []byte, where string, lim Limits) error {
	ev = bytes.TrimSpace(ev)
	if len(ev) == 0 || ev[0] != '{' {
		return errorf(http.StatusBadRequest, "invalid_event", "%s: each event must be a JSON object", where)
	}
	if b.Events >= lim.MaxEvents {
		return errorf(http.StatusRequestEntityTooLarge, "too_many_events", "request carries more than %d events", lim.MaxEvents)
	}
	buf := bytes.NewBuffer(b.Body)
	if err := json.Compact(buf, ev); err != nil {
		return errorf(http.StatusBadRequest, "malformed_body", "%s: %v", where, err)
	}
	b.Body = append(buf.Bytes(), '\n')
	b.Events++
	return nil
}

func (b *Batch) addNDJSON(data []byte, lim Limits) error {
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if !json.Valid(line) {
			return errorf(http.StatusBadRequest, "malformed_body", "line %d: not valid JSON", n)
		}
		if err := b.addEvent(line, fmt.Sprintf("line %d", n), lim); err != nil {
			return err
		}
	}
	return nil
}

func (b *Batch) addJSON(data []byte, lim Limits) error {
	if !json.Valid(data) {
		return errorf(http.StatusBadRequest, "malformed_body", "body is not valid JSON: %s", syntaxError(data))
	}
	data = bytes.TrimSpace(data)
	switch data[0] {
	case '[':
		return b.addArray(data, "events", lim)
	case '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(data, &obj); err != nil {
			return errorf(http.StatusBadRequest, "malformed_body", "%v", err)
		}
		if evs, ok := obj["events"]; ok && len(obj) == 1 {
			return b.addArray(evs, "events", lim)
		}
		if d, ok := obj["data"]; ok && isClassic(obj) {
			return b.addArray(d, "data", lim)
		}
		return b.addEvent(data, "event", lim)
	}
	return errorf(http.StatusBadRequest, "invalid_event", "body must be a JSON object or array, got %s", kind(data[0]))
}

// isClassic reports whether obj is the classic collection
// {"version":..., "token":..., "data":[...]}.
func isClassic(obj map[string]json.RawMessage) bool {
	for k := range obj {
		if k != "data" && k != "version" && k != "token" {
			return false
		}
	}
	return true
}

func (b *Batch) addArray(raw json.RawMessage, field string, lim Limits) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return errorf(http.StatusBadRequest, "invalid_body", "%q must be an array of event objects", field)
	}
	var evs []json.RawMessage
	if err := json.Unmarshal(raw, &evs); err != nil {
		return errorf(http.StatusBadRequest, "malformed_body", "%s: %v", field, err)
	}
	for i, ev := range evs {
		if err := b.addEvent(ev, fmt.Sprintf("%s[%d]", field, i), lim); err != nil {
			return err
		}
	}
	return nil
}

func syntaxError(data []byte) string {
	var v any
	err := json.Unmarshal(data, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v at byte %d", se, se.Offset)
	}
	if err != nil {
		return err.Error()
	}
	return "invalid"
}

func kind(c byte) string {
	switch {
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	}
	return "a number"
}
