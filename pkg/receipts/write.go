package receipts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// Batch is one batch (one request's message) of an outcome.
type Batch struct {
	Tenant, BatchID string
	Events          int
}

// Writer writes receipts. Every write is idempotent: writing the same
// outcome again changes nothing, and reports the same counted events.
type Writer struct {
	js jetstream.JetStream
	kv jetstream.KeyValue
}

// NewWriter returns a writer into kv (from Ensure) through js, whose
// asynchronous publishes it uses.
func NewWriter(js jetstream.JetStream, kv jetstream.KeyValue) *Writer {
	return &Writer{js: js, kv: kv}
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
// missing are created with asynchronous puts, so a big object costs a few
// round trips per window; those o changes are updated with a revision
// check, so two writers of one batch never lose each other's outcome.
// Writing an outcome again (a retry, a redelivered batch that meets its
// stored object) costs one read per window and no write. (A put that
// expects no earlier message on its key would make creating race-free,
// but costs the server four times as much per receipt. The race it leaves:
// two workers creating the receipt of one batch within the same
// milliseconds, which needs its message held by both at once, see
// README "Duplicates and exactly-once"; both then count it, and the
// receipt lists the last one's object.)
func (w *Writer) Record(ctx context.Context, batches []Batch, o Outcome) ([]bool, error) {
	counted := make([]bool, len(batches))
	for start := 0; start < len(batches); start += window {
		end := min(start+window, len(batches))
		last, err := w.read(ctx, batches[start:end])
		if err != nil {
			return nil, err
		}
		futures := make(map[int]jetstream.PubAckFuture, end-start)
		for i := start; i < end; i++ {
			b := batches[i]
			m := last[subject(b)]
			if m == nil {
				f, err := w.create(b, o)
				if err != nil {
					return nil, err
				}
				futures[i] = f
				continue
			}
			if counted[i], err = w.mergeInto(ctx, b, o, m); err != nil {
				return nil, err
			}
		}
		for i, f := range futures {
			select {
			case <-f.Ok():
				counted[i] = true
			case err := <-f.Err():
				return nil, fmt.Errorf("write receipt %s of tenant %s: %w", batches[i].BatchID, batches[i].Tenant, err)
			case <-ctx.Done():
				return nil, fmt.Errorf("write receipt %s: %w", batches[i].BatchID, ctx.Err())
			}
		}
	}
	return counted, nil
}

// read returns the last message of each batch's key that has one (and is
// not a delete marker), by subject.
func (w *Writer) read(ctx context.Context, batches []Batch) (map[string]*jetstream.RawStreamMsg, error) {
	subjects := make([]string, len(batches))
	for i, b := range batches {
		subjects[i] = subject(b)
	}
	msgs, err := jetstreamext.GetLastMsgsFor(ctx, w.js, "KV_"+Bucket, subjects)
	if err != nil {
		return nil, fmt.Errorf("read %d receipts: %w", len(batches), err)
	}
	last := make(map[string]*jetstream.RawStreamMsg)
	for m, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %d receipts: %w", len(batches), err)
		}
		if m.Header.Get(kvOperation) == "" {
			last[m.Subject] = m
		}
	}
	return last, nil
}

// mergeInto merges o into b's receipt, whose last message is m: nothing is
// written when o is in it already.
func (w *Writer) mergeInto(ctx context.Context, b Batch, o Outcome, m *jetstream.RawStreamMsg) (bool, error) {
	rec, err := decode(m.Data)
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

// create publishes the receipt of b's first outcome (a KV put).
func (w *Writer) create(b Batch, o Outcome) (jetstream.PubAckFuture, error) {
	o.Events = b.Events
	data, err := json.Marshal(newRecord(b.BatchID, o))
	if err != nil {
		return nil, fmt.Errorf("encode receipt %s: %w", b.BatchID, err)
	}
	m := nats.NewMsg(subject(b))
	m.Data = data
	f, err := w.js.PublishMsgAsync(m)
	if err != nil {
		return nil, fmt.Errorf("write receipt %s: %w", b.BatchID, err)
	}
	return f, nil
}

// merge adds o to b's existing receipt, retrying when another writer
// updated it in between, and reports whether b is counted in o.
func (w *Writer) merge(ctx context.Context, b Batch, o Outcome) (bool, error) {
	o.Events = b.Events
	key := Key(b.Tenant, b.BatchID)
	for {
		e, err := w.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) { // expired or deleted since
			data, _ := json.Marshal(newRecord(b.BatchID, o))
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
