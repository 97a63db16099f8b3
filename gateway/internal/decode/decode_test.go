package decode

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

var lim = body.Limits{MaxBodyBytes: 1 << 20, MaxDecodedBytes: 1 << 20, MaxEvents: 100, MaxDepth: 8}

func gz(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

func zst(s string) string {
	w, _ := zstd.NewWriter(nil)
	defer w.Close()
	return string(w.EncodeAll([]byte(s), nil))
}

func decodeString(d *Decoder, in, ct, ce string) (string, int, error) {
	b, err := d.Decode(strings.NewReader(in), ct, ce)
	if err != nil {
		return "", 0, err
	}
	defer b.Release()
	return string(b.Body), b.Events, nil
}

func TestDecodeShapes(t *testing.T) {
	d := newDecoder(lim)
	for _, tt := range []struct {
		name, ct, ce, body, want string
	}{
		{"wrapper", "application/json", "", `{"events":[{"a":1},{"b": 2}]}`, "{\"a\":1}\n{\"b\":2}\n"},
		{"wrapper spaced", "", "", " {\n \"events\" : [ {\"a\" : 1} ,\n{ } ] }\n", "{\"a\":1}\n{}\n"},
		{"array", "", "", ` [ {"a":1} ] `, "{\"a\":1}\n"},
		{"object", "application/json; charset=utf-8", "", "{\n \"a\": [1, 2.5e-3, true, null, \"x\"]\n}", "{\"a\":[1,2.5e-3,true,null,\"x\"]}\n"},
		{"empty object is an event", "", "", `{}`, "{}\n"},
		{"ndjson", "application/x-ndjson", "", "{\"a\":1}\n\n{\"b\":2}", "{\"a\":1}\n{\"b\":2}\n"},
		{"ndjson crlf", "application/x-ndjson", "", "{\"a\":1}\r\n {\"b\" : 2} \r\n", "{\"a\":1}\n{\"b\":2}\n"},
		{"jsonl", "application/jsonl", "", "{\"a\":1}\n", "{\"a\":1}\n"},
		{"classic", "application/json", "", `{"version":"1","token":"x","data":[{"a":1},{"b":[]}]}`, "{\"a\":1}\n{\"b\":[]}\n"},
		{"classic data first", "", "", `{"data":[{"a":1}],"version":"1"}`, "{\"a\":1}\n"},
		{"gzip", "application/json", "gzip", gz(`[{"a":1}]`), "{\"a\":1}\n"},
		{"gzip two members", "", "gzip", gz(`[{"a":1},`) + gz(`{"b":2}]`), "{\"a\":1}\n{\"b\":2}\n"},
		{"zstd", "", "zstd", zst(`{"events":[{"a":1}]}`), "{\"a\":1}\n"},
		{"zstd ndjson", "application/x-ndjson", "ZSTD", zst("{\"a\":1}\n{\"b\":2}\n"), "{\"a\":1}\n{\"b\":2}\n"},
		{"identity", "", "identity", `{"a":1}`, "{\"a\":1}\n"},
		{"object with data field", "", "", `{"data":"x","other":1}`, "{\"data\":\"x\",\"other\":1}\n"},
		{"object with events and more", "", "", `{"events":[1],"id":2}`, "{\"events\":[1],\"id\":2}\n"},
		{"event repeating data", "", "", `{"data":1,"data":[2],"x":3}`, "{\"data\":1,\"data\":[2],\"x\":3}\n"},
		{"event repeating events", "", "", `{"events":[{}],"events":[{}],"id":1}`, "{\"events\":[{}],\"events\":[{}],\"id\":1}\n"},
		{"strings kept as sent", "", "", `{"s":"\u00e9\n\"é\\/"}`, "{\"s\":\"\\u00e9\\n\\\"é\\\\/\"}\n"},
		{"utf8 kept", "", "", `{"ключ":"值 🎉"}`, "{\"ключ\":\"值 🎉\"}\n"},
		{"numbers", "", "", `[{"n":[0,-0,1.5,-2E+10,3e-2,123456789012345678901234567890]}]`, "{\"n\":[0,-0,1.5,-2E+10,3e-2,123456789012345678901234567890]}\n"},
		{"depth at the limit", "", "", `[{"a":[[[[[[1]]]]]]}]`, "{\"a\":[[[[[[1]]]]]]}\n"},
	} {
		got, n, err := decodeString(d, tt.body, tt.ct, tt.ce)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got != tt.want || n != strings.Count(tt.want, "\n") {
			t.Errorf("%s: got %q (%d events), want %q", tt.name, got, n, tt.want)
		}
	}
}

// badInputs are refused bodies; the fuzz target starts from them too.
var badInputs = []struct {
	name, ct, ce, body string
	status             int
	code, where        string // where: text the message must contain
}{
	{"empty", "", "", "", 400, "empty_body", ""},
	{"blank", "", "", " \n\t ", 400, "empty_body", ""},
	{"blank ndjson", "application/x-ndjson", "", "\n\n  \n", 400, "empty_body", ""},
	{"empty gzip", "", "gzip", "", 400, "empty_body", ""},
	{"empty array", "", "", "[]", 400, "no_events", ""},
	{"empty wrapper", "", "", `{"events":[]}`, 400, "no_events", ""},
	{"number event", "", "", `[{},1]`, 400, "invalid_event", "[1]"},
	{"number in wrapper", "", "", `{"events":[{},{},"x"]}`, 400, "invalid_event", "events[2]"},
	{"number body", "", "", "42", 400, "invalid_body", "a number"},
	{"string body", "", "", `"x"`, 400, "invalid_body", "a string"},
	{"events not array", "", "", `{"events":{"a":1}}`, 400, "invalid_body", `"events"`},
	{"classic data string", "", "", `{"version":"1","token":"t","data":"x"}`, 400, "invalid_body", `"data"`},
	{"classic data has number", "", "", `{"version":"1","data":[{},7]}`, 400, "invalid_event", "data[1]"},
	{"duplicate events", "", "", `{"events":[{}],"events":[{}]}`, 400, "invalid_body", "twice"},
	{"duplicate data", "", "", `{"version":"1","data":[{}],"token":"t","data":[{}]}`, 400, "invalid_body", `"data" appears twice`},
	{"bad json", "", "", `{"a":`, 400, "malformed_body", "ends"},
	{"bad json in event", "", "", `[{"a":1},{"b":tru}]`, 400, "malformed_body", "[1]"},
	{"missing colon", "", "", `{"a" 1}`, 400, "malformed_body", "byte 5"},
	{"leading zero", "", "", `{"a":01}`, 400, "malformed_body", ""},
	{"bad escape", "", "", `{"a":"\x"}`, 400, "malformed_body", "escape"},
	{"bad unicode escape", "", "", `{"a":"\u12g4"}`, 400, "malformed_body", "escape"},
	{"control char", "", "", "{\"a\":\"\x01\"}", 400, "malformed_body", "control"},
	{"invalid utf8", "", "", "{\"a\":\"\xff\xfe\"}", 400, "malformed_body", "UTF-8"},
	{"surrogate utf8", "", "", "{\"a\":\"\xed\xa0\x80\"}", 400, "malformed_body", "UTF-8"},
	{"truncated utf8", "", "", "{\"a\":\"\xe2\x82", 400, "malformed_body", "ends"},
	{"invalid utf8 in a key", "", "", "{\"caf\xe9\":1}", 400, "malformed_body", "UTF-8"},
	{"ndjson invalid utf8", "application/x-ndjson", "", "{\"a\":1}\n{\"a\":\"caf\xe9\"}\n", 400, "malformed_body", "UTF-8"},
	{"gzip invalid utf8", "", "gzip", gz("{\"a\":\"\xc3\"}"), 400, "malformed_body", "UTF-8"},
	{"trailing garbage", "", "", `{"a":1} x`, 400, "malformed_body", "after the JSON value"},
	{"two objects", "", "", "{\"a\":1}\n{\"b\":2}", 400, "malformed_body", "x-ndjson"},
	{"trailing comma", "", "", `[{"a":1},]`, 400, "malformed_body", ""},
	{"ndjson bad line", "application/x-ndjson", "", "{\"a\":1}\n{oops\n", 400, "malformed_body", "line 2"},
	{"ndjson number line", "application/x-ndjson", "", "{\"a\":1}\n\n7\n", 400, "invalid_event", "line 3"},
	{"ndjson two per line", "application/x-ndjson", "", "{\"a\":1} {\"b\":2}\n", 400, "malformed_body", "line 1"},
	{"ndjson pretty", "application/x-ndjson", "", "{\n\"a\":1}\n", 400, "malformed_body", "line 1"},
	{"xml", "application/xml", "", "<a/>", 415, "unsupported_media_type", "application/xml"},
	{"latin1", "application/json; charset=iso-8859-1", "", "{}", 415, "unsupported_media_type", "charset"},
	{"bad content type", "a/b/c", "", "{}", 415, "unsupported_media_type", ""},
	{"brotli", "", "br", "{}", 415, "unsupported_encoding", "br"},
	{"two encodings", "", "gzip, zstd", "{}", 415, "unsupported_encoding", ""},
	{"not gzip", "", "gzip", "not gzip", 400, "malformed_body", "gzip"},
	{"truncated gzip", "", "gzip", gz(`[{"a":1}]`)[:20], 400, "malformed_body", "gzip"},
	{"gzip without trailer", "", "gzip", gz(`[{"a":1}]`)[:len(gz(`[{"a":1}]`))-4], 400, "malformed_body", "gzip"},
	{"gzip bad checksum", "", "gzip", gz(`[{"a":1}]`)[:len(gz(`[{"a":1}]`))-8] + "\x00\x00\x00\x00" + gz(`[{"a":1}]`)[len(gz(`[{"a":1}]`))-4:], 400, "malformed_body", "gzip"},
	{"gzip then garbage", "", "gzip", gz(`[{"a":1}]`) + "xx", 400, "malformed_body", "gzip"},
	{"not zstd", "", "zstd", "not zstd", 400, "malformed_body", "zstd"},
	{"truncated zstd", "", "zstd", zst(`[{"a":"` + strings.Repeat("x", 100) + `"}]`)[:15], 400, "malformed_body", "zstd"},
	{"too many", "", "", "[" + strings.Repeat(`{},`, 100) + "{}]", 413, "too_many_events", "100"},
	{"too many in wrapper", "", "", `{"events":[` + strings.Repeat(`{},`, 100) + "{}]}", 413, "too_many_events", "100"},
	{"too many ndjson", "application/x-ndjson", "", strings.Repeat("{}\n", 101), 413, "too_many_events", "100"},
	{"too deep", "", "", `[{"a":[[[[[[[1]]]]]]]}]`, 413, "too_deep", "8"},
	{"too deep object", "", "", strings.Repeat(`{"a":`, 9) + "1" + strings.Repeat("}", 9), 413, "too_deep", "8"},
	{"too big", "", "", `{"a":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "body_too_large", "on the wire"},
	{"bomb", "", "gzip", gz(`{"a":"` + strings.Repeat("x", 2<<20) + `"}`), 413, "decoded_too_large", "decompression"},
	{"zstd bomb", "", "zstd", zst(`{"a":"` + strings.Repeat("x", 2<<20) + `"}`), 413, "decoded_too_large", "decompression"},
}

func TestDecodeRejects(t *testing.T) {
	d := newDecoder(lim)
	for _, tt := range badInputs {
		_, _, err := decodeString(d, tt.body, tt.ct, tt.ce)
		var de *body.Error
		if !errors.As(err, &de) || de.Status() != tt.status || string(de.Code) != tt.code || !strings.Contains(de.Message, tt.where) {
			t.Errorf("%s: err = %v, want %d %s mentioning %q", tt.name, err, tt.status, tt.code, tt.where)
		}
	}
}

// A client whose connection fails mid-body is not sent a 500.
func TestDecodeReadError(t *testing.T) {
	d := newDecoder(lim)
	_, err := d.Decode(io.MultiReader(strings.NewReader(`[{"a":`), iotest.ErrReader(errors.New("connection reset"))), "", "")
	var de *body.Error
	if !errors.As(err, &de) || de.Status() != 400 || !strings.Contains(de.Message, "connection reset") {
		t.Fatalf("err = %v", err)
	}
	_, err = d.Decode(io.MultiReader(strings.NewReader(`[{"a":`), iotest.ErrReader(io.ErrUnexpectedEOF)), "", "gzip")
	if !errors.As(err, &de) || de.Status() != 400 {
		t.Fatalf("err = %v", err)
	}
}

// The decoder reads in small pieces as happily as in one.
func TestDecodeOneByteReads(t *testing.T) {
	d := newDecoder(lim)
	in := `{"events":[{"s":"é\u00e9 🎉","n":-1.5e3,"t":true,"f":false,"z":null,"a":[{"b":[]}]}]}`
	b, err := d.Decode(iotest.OneByteReader(strings.NewReader(in)), "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	want := `{"s":"é\u00e9 🎉","n":-1.5e3,"t":true,"f":false,"z":null,"a":[{"b":[]}]}` + "\n"
	if string(b.Body) != want {
		t.Fatalf("got %q, want %q", b.Body, want)
	}
}

// Reused buffers never leak one request's bytes into the next.
func TestDecodeReuse(t *testing.T) {
	d := newDecoder(lim)
	for i := range 50 {
		in := `[{"i":` + strings.Repeat("1", 1+i%7) + `}]`
		got, _, err := decodeString(d, in, "", []string{"", "gzip", "zstd"}[i%3])
		if i%3 == 1 {
			got, _, err = decodeString(d, gz(in), "", "gzip")
		}
		if i%3 == 2 {
			got, _, err = decodeString(d, zst(in), "", "zstd")
		}
		if want := `{"i":` + strings.Repeat("1", 1+i%7) + "}\n"; err != nil || got != want {
			t.Fatalf("round %d: %q, %v; want %q", i, got, err, want)
		}
		_, _, _ = decodeString(d, `[{"a":1},`, "", "") // a failure in between
	}
}

// FuzzDecode checks that any input is either decoded into valid NDJSON
// objects or refused with a 4xx *body.Error, that nothing encoding/json rejects
// is accepted, and that an accepted body holds the events as sent.
func FuzzDecode(f *testing.F) {
	for _, tt := range badInputs {
		if len(tt.body) < 64<<10 {
			f.Add([]byte(tt.body), tt.ct, tt.ce)
		}
	}
	for _, s := range []string{`{"events":[{"a":1},{"b":[2,{"c":"d"}]}]}`, `[{"a":"é"}]`, `{"a":1}`,
		`{"version":"1","token":"t","data":[{"x":null}]}`, `{"data":[{}],"v":1}`} {
		f.Add([]byte(s), "application/json", "")
		f.Add([]byte(gz(s)), "", "gzip")
		f.Add([]byte(zst(s)), "", "zstd")
	}
	f.Add([]byte("{\"a\":1}\n{\"b\":true}\n"), "application/x-ndjson", "")
	d := newDecoder(body.Limits{MaxBodyBytes: 64 << 10, MaxDecodedBytes: 256 << 10, MaxEvents: 50, MaxDepth: 16})
	f.Fuzz(func(t *testing.T, in []byte, ct, ce string) {
		jsonMode := ce == "" && (ct == "" || ct == "application/json")
		b, err := d.Decode(bytes.NewReader(in), ct, ce)
		if err != nil {
			var de *body.Error
			if !errors.As(err, &de) || de.Status() < 400 || de.Status() > 499 || de.Code == "" {
				t.Fatalf("error %v (%T) is not a 4xx *body.Error", err, err)
			}
			if jsonMode && de.Code == "malformed_body" && json.Valid(in) && utf8.Valid(in) {
				t.Fatalf("refused %q, which is valid JSON: %v", in, err)
			}
			return
		}
		defer b.Release()
		lines := bytes.Split(bytes.TrimSuffix(b.Body, []byte("\n")), []byte("\n"))
		if len(lines) != b.Events || b.Events == 0 {
			t.Fatalf("%d events, %d lines: %q", b.Events, len(lines), b.Body)
		}
		for _, l := range lines {
			var obj map[string]json.RawMessage
			if json.Unmarshal(l, &obj) != nil || !json.Valid(l) {
				t.Fatalf("line %q is not a JSON object", l)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, l); err != nil || !bytes.Equal(compact.Bytes(), l) {
				t.Fatalf("line %q is not compact", l)
			}
		}
		if jsonMode && !json.Valid(in) {
			t.Fatalf("accepted %q, which encoding/json rejects", in)
		}
	})
}

// Every good body that encoding/json accepts decodes to the same events as
// encoding/json sees.
func TestDecodeAgreesWithEncodingJSON(t *testing.T) {
	d := newDecoder(lim)
	for _, in := range []string{
		`[{"a":1},{"b":"x y"}]`, `{"events":[{"a":{"b":[1,2,{"c":"\"}"}]}}]}`,
		`{"a":"[,]{}"}`, ` [ { "a" : [ ] , "b" : { } } ] `, `{"events":[{"x":"\\"}]}`,
	} {
		got, n, err := decodeString(d, in, "", "")
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		var want []json.RawMessage
		var wrapper struct{ Events []json.RawMessage }
		if json.Unmarshal([]byte(in), &want) != nil {
			if json.Unmarshal([]byte(in), &wrapper); wrapper.Events != nil {
				want = wrapper.Events
			} else {
				want = []json.RawMessage{json.RawMessage(in)}
			}
		}
		var sb strings.Builder
		for _, ev := range want {
			var c bytes.Buffer
			_ = json.Compact(&c, ev)
			sb.Write(c.Bytes())
			sb.WriteByte('\n')
		}
		if got != sb.String() || n != len(want) {
			t.Errorf("%s: got %q, want %q", in, got, sb.String())
		}
	}
}

// newDecoder is a Decoder with a Budget of its own.
func newDecoder(lim body.Limits) *Decoder { return NewDecoder(body.NewBudget(lim)) }
