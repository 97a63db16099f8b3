package receipts

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// creation encodes the records an outcome creates: newRecord(b, o)
// for many batches, which differ only in batch id, events and requests. Its bytes are
// those of json.Marshal (TestCreationEncodesAsJSON), without reflection and
// with one allocation per record.
type creation struct {
	status []byte // `,"status":"…","events":`
	object []byte // `,"objects":[{"key":"…","events":` for a landing, else `,"objects":[]`
	tail   []byte // the rest: `}]`, landed_at or error, counted_in, `}`
	landed bool
}

func newCreation(o Outcome) (creation, error) {
	r := newRecord(Batch{}, o)
	c := creation{landed: o.landed()}
	c.status = append(appendString([]byte(`,"status":`), r.Status), `,"events":`...)
	if o.landed() {
		c.object = append(appendString([]byte(`,"objects":[{"key":`), o.Key), `,"events":`...)
		c.tail = []byte(`}]`)
	} else {
		c.object = []byte(`,"objects":[]`)
	}
	if r.LandedAt != nil {
		at, err := json.Marshal(r.LandedAt)
		if err != nil {
			return c, fmt.Errorf("encode receipt: %w", err)
		}
		c.tail = append(append(c.tail, `,"landed_at":`...), at...)
	}
	if r.Error != "" {
		c.tail = appendString(append(c.tail, `,"error":`...), r.Error)
	}
	c.tail = append(appendString(append(c.tail, `,"counted_in":`...), r.CountedIn), '}')
	return c, nil
}

// encode returns the JSON of the record of bt created by the outcome.
func (c creation) encode(bt Batch) []byte {
	b := make([]byte, 0, 16+len(bt.BatchID)+len(c.status)+len(c.object)+len(c.tail)+2*20+len(bt.Requests)*8)
	b = appendString(append(b, `{"batch_id":`...), bt.BatchID)
	b = strconv.AppendInt(append(b, c.status...), int64(bt.Events), 10)
	b = append(b, c.object...)
	if c.landed { // the object is listed with the batch's events
		b = strconv.AppendInt(b, int64(bt.Events), 10)
	}
	if len(bt.Requests) == 0 {
		return append(b, c.tail...)
	}
	b = append(b, c.tail[:len(c.tail)-1]...) // all but the closing brace
	b = append(b, `,"requests":[`...)
	for i, n := range bt.Requests {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(n), 10)
	}
	return append(b, ']', '}')
}

// appendString appends s as json.Marshal encodes it; s is most often an
// id that needs no escaping, and costs no allocation then.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}
