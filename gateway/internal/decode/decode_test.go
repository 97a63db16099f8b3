package decode

import (
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"
)

var lim = Limits{MaxBodyBytes: 1 << 20, MaxDecodedBytes: 1 << 20, MaxEvents: 100}

func gz(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

func TestDecodeShapes(t *testing.T) {
	for _, tt := range []struct {
		name, ct, ce, body, want string
	}{
		{"wrapper", "application/json", "", `{"events":[{"a":1},{"b": 2}]}`, "{\"a\":1}\n{\"b\":2}\n"},
		{"array", "", "", ` [ {"a":1} ] `, "{\"a\":1}\n"},
		{"object", "application/json; charset=utf-8", "", "{\n \"a\": [1, 2]\n}", "{\"a\":[1,2]}\n"},
		{"ndjson", "application/x-ndjson", "", "{\"a\":1}\n\n{\"b\":2}", "{\"a\":1}\n{\"b\":2}\n"},
		{"classic", "application/json", "", `{"version":"1","token":"x","data":[{"a":1}]}`, "{\"a\":1}\n"},
		{"gzip", "application/json", "gzip", gz(`[{"a":1}]`), "{\"a\":1}\n"},
		{"object with data field", "", "", `{"data":"x","other":1}`, "{\"data\":\"x\",\"other\":1}\n"},
	} {
		b, err := Decode(strings.NewReader(tt.body), tt.ct, tt.ce, lim)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if string(b.Body) != tt.want || b.Events != strings.Count(tt.want, "\n") {
			t.Errorf("%s: got %q (%d events), want %q", tt.name, b.Body, b.Events, tt.want)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, tt := range []struct {
		name, ct, ce, body string
		status             int
		code               string
	}{
		{"empty", "", "", "  ", 400, "empty_body"},
		{"empty array", "", "", "[]", 400, "no_events"},
		{"number event", "", "", "[1]", 400, "invalid_event"},
		{"number body", "", "", "42", 400, "invalid_event"},
		{"bad json", "", "", `{"a":`, 400, "malformed_body"},
		{"trailing garbage", "", "", `{"a":1} x`, 400, "malformed_body"},
		{"ndjson bad line", "application/x-ndjson", "", "{\"a\":1}\n{oops\n", 400, "malformed_body"},
		{"classic data string", "", "", `{"version":"1","token":"t","data":"x"}`, 400, "invalid_body"},
		{"xml", "application/xml", "", "<a/>", 415, "unsupported_media_type"},
		{"brotli", "", "br", "{}", 415, "unsupported_encoding"},
		{"bad gzip", "", "gzip", "not gzip", 400, "malformed_body"},
		{"too many", "", "", "[" + strings.Repeat(`{},`, 100) + "{}]", 413, "too_many_events"},
		{"too big", "", "", `{"a":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "body_too_large"},
		{"bomb", "", "gzip", gz(`{"a":"` + strings.Repeat("x", 2<<20) + `"}`), 413, "decoded_too_large"},
	} {
		_, err := Decode(strings.NewReader(tt.body), tt.ct, tt.ce, lim)
		var de *Error
		if !errors.As(err, &de) || de.Status != tt.status || de.Code != tt.code {
			t.Errorf("%s: err = %v, want %d %s", tt.name, err, tt.status, tt.code)
		}
	}
}
