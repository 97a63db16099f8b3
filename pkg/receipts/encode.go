package receipts

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/sluice-ingest/sluice/pkg/jsonx"
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
	c.status = append(jsonx.AppendString([]byte(`,"status":`), r.Status, jsonx.Marshal), `,"events":`...)
	if o.landed() {
		c.object = append(jsonx.AppendString([]byte(`,"objects":[{"key":`), o.Key, jsonx.Marshal), `,"events":`...)
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
		c.tail = jsonx.AppendString(append(c.tail, `,"error":`...), r.Error, jsonx.Marshal)
	}
	c.tail = append(jsonx.AppendString(append(c.tail, `,"counted_in":`...), r.CountedIn, jsonx.Marshal), '}')
	return c, nil
}

// encode returns the JSON of the record of bt created by the outcome.
func (c creation) encode(bt Batch) []byte {
	b := make([]byte, 0, 16+len(bt.BatchID)+len(c.status)+len(c.object)+len(c.tail)+2*20+len(bt.Requests)*8)
	b = jsonx.AppendString(append(b, `{"batch_id":`...), bt.BatchID, jsonx.Marshal)
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
