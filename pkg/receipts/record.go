package receipts

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Outcome is one thing that became of a batch: it landed in an object, or
// its message was dead-lettered.
type Outcome struct {
	// ID names the outcome (ObjectOutcome, DeadLetterOutcome).
	ID     string
	Events int
	// Key is the object's key, for a landing.
	Key string
	// Error is the dead letter's cause, for a dead letter.
	Error string
	At    time.Time
}

func (o Outcome) landed() bool { return o.Key != "" }

// newRecord is the record of b whose first outcome is o: the batch's
// events are counted in o.
func newRecord(b Batch, o Outcome) record {
	r := record{Receipt: Receipt{BatchID: b.BatchID, Objects: []Object{}}, CountedIn: o.ID, Requests: b.Requests}
	r.merge(o)
	return r
}

// merge adds o to the record. A landing wins over a dead letter (the events
// are in S3, say, after a replay); an object already listed is not listed
// twice; the first landing's time is kept.
func (r *record) merge(o Outcome) {
	r.Events = max(r.Events, o.Events)
	if !o.landed() {
		if r.Status == "" {
			r.Status, r.Error = StatusDeadLettered, o.Error
		}
		return
	}
	r.Status, r.Error = StatusLanded, ""
	if !slices.ContainsFunc(r.Objects, func(ob Object) bool { return ob.Key == o.Key }) {
		r.Objects = append(r.Objects, Object{Key: o.Key, Events: o.Events})
	}
	if at := o.At.UTC(); r.LandedAt == nil || at.Before(*r.LandedAt) {
		r.LandedAt = &at
	}
}

func decode(b []byte) (record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decode receipt: %w", err)
	}
	if r.Objects == nil {
		r.Objects = []Object{}
	}
	return r, nil
}
