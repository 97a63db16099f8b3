package receipts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Batch is one message of an outcome: one request's batch, or the
// requests of a coalesced message, whose one receipt (under the message's
// id) answers for each of them (Get).
type Batch struct {
	Tenant, BatchID string
	Events          int
	// Requests holds the event count of each request of a coalesced
	// message, in order; nil for a message of one request.
	Requests []int
}

// Writer writes receipts. Every write is idempotent: writing the same
// outcome again changes nothing, and reports the same counted events.
type Writer struct {
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	pubs publishers
}

// NewWriter returns a writer into kv (from Ensure) through js's
// connection.
func NewWriter(js jetstream.JetStream, kv jetstream.KeyValue) *Writer {
	return &Writer{js: js, kv: kv, pubs: publishers{nc: js.Conn()}}
}

// window bounds the receipt publishes awaiting their PubAck at once, per
// Record call (a worker runs one per uploader).
const window = 256

// Record writes outcome o for every batch and returns, per batch, whether
// its events are counted in o: true when o created the batch's receipt
// (now or in an earlier write of the same outcome), false when another
// outcome did (the batch landed elsewhere before).
//
// It goes window batches at a time: one batch read (a direct get of the
// last message of many subjects) finds the receipts that exist; those
// missing are created with asynchronous puts, whose PubAcks are awaited
// together, so a big object costs a few round trips per window; those o
// changes are updated with a revision check, so two writers of one batch
// never lose each other's outcome. Writing an outcome again (a retry, a
// redelivered batch that meets its stored object) costs one read per
// window and no write. (A put that expects no earlier message on its key
// would make creating race-free, but costs the server four times as much
// per receipt. The race it leaves: two workers creating the receipt of one
// batch within the same milliseconds, which needs its message held by both
// at once, see docs/guarantees.md "Duplicates and exactly-once"; both then count it,
// and the receipt lists the last one's object.)
func (w *Writer) Record(ctx context.Context, batches []Batch, o Outcome) ([]bool, error) {
	create, err := newCreation(o)
	if err != nil {
		return nil, err
	}
	p, err := w.pubs.get()
	if err != nil {
		return nil, err
	}
	done := false
	defer func() { w.pubs.put(p, done) }()
	counted := make([]bool, len(batches))
	subjects := make([]string, 0, min(window, len(batches)))
	created := make([]int, 0, min(window, len(batches)))
	for start := 0; start < len(batches); start += window {
		end := min(start+window, len(batches))
		subjects = subjects[:0]
		for _, b := range batches[start:end] {
			subjects = append(subjects, subject(b))
		}
		last, err := lastMessages(ctx, w.js, "KV_"+Bucket, subjects)
		if err != nil {
			return nil, fmt.Errorf("read %d receipts: %w", len(subjects), err)
		}
		created = created[:0]
		for i := start; i < end; i++ {
			b := batches[i]
			data, ok := last[subjects[i-start]]
			if !ok {
				if err := p.put(subjects[i-start], create.encode(b)); err != nil {
					return nil, err
				}
				created = append(created, i)
				continue
			}
			if counted[i], err = w.mergeInto(ctx, b, o, data); err != nil {
				return nil, err
			}
		}
		if err := p.wait(ctx); err != nil {
			return nil, err
		}
		for _, i := range created {
			counted[i] = true
		}
	}
	done = true
	return counted, nil
}

// mergeInto merges o into b's receipt, whose last message holds data:
// nothing is written when o is in it already.
func (w *Writer) mergeInto(ctx context.Context, b Batch, o Outcome, data []byte) (bool, error) {
	rec, err := decode(data)
	if err != nil {
		return false, err
	}
	o.Events = b.Events
	before, status := len(rec.Objects), rec.Status
	rec.merge(o)
	if len(rec.Objects) == before && rec.Status == status {
		return rec.CountedIn == o.ID, nil
	}
	return w.merge(ctx, b, o)
}

// kvOperation is the header of a KV delete or purge marker.
const kvOperation = "KV-Operation"

func subject(b Batch) string { return "$KV." + Bucket + "." + Key(b.Tenant, b.BatchID) }

// merge adds o to b's existing receipt, retrying when another writer
// updated it in between, and reports whether b is counted in o.
func (w *Writer) merge(ctx context.Context, b Batch, o Outcome) (bool, error) {
	o.Events = b.Events
	key := Key(b.Tenant, b.BatchID)
	for {
		e, err := w.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) { // expired or deleted since
			data, _ := json.Marshal(newRecord(b, o))
			if _, err = w.kv.Create(ctx, key, data); err == nil {
				return true, nil
			}
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
		}
		if err != nil {
			return false, fmt.Errorf("read receipt %s of tenant %s: %w", b.BatchID, b.Tenant, err)
		}
		rec, err := decode(e.Value())
		if err != nil {
			return false, err
		}
		before, _ := json.Marshal(rec)
		rec.merge(o)
		after, _ := json.Marshal(rec)
		if string(before) == string(after) {
			return rec.CountedIn == o.ID, nil
		}
		_, err = w.kv.Update(ctx, key, after, e.Revision())
		if err == nil {
			return rec.CountedIn == o.ID, nil
		}
		if !wrongLast(err) {
			return false, fmt.Errorf("update receipt %s of tenant %s: %w", b.BatchID, b.Tenant, err)
		}
	}
}

// wrongLast reports a publish refused because its key already holds a
// message (or another revision than expected): the server's "wrong last
// sequence", whose code differs on replicated streams.
func wrongLast(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
