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
// outcome did (the batch landed elsewhere before). A receipt is created
// with a publish that expects no earlier message on its key, sent
// asynchronously, window at a time, so a big object costs few round trips.
// The receipts that exist already are read back in one batch request per
// window; those that o changes are updated with a revision check, so two
// writers of one batch never lose each other's outcome. Writing an outcome
// again (a retry, a redelivered batch that meets its stored object) thus
// costs a publish and a read per window, and no update.
func (w *Writer) Record(ctx context.Context, batches []Batch, o Outcome) ([]bool, error) {
	counted := make([]bool, len(batches))
	for start := 0; start < len(batches); start += window {
		end := min(start+window, len(batches))
		futures := make([]jetstream.PubAckFuture, 0, end-start)
		for _, b := range batches[start:end] {
			f, err := w.create(b, o)
			if err != nil {
				return nil, err
			}
			futures = append(futures, f)
		}
		var exist []int
		for i, f := range futures {
			b := batches[start+i]
			select {
			case <-f.Ok():
				counted[start+i] = true
			case err := <-f.Err():
				if !wrongLast(err) {
					return nil, fmt.Errorf("write receipt %s of tenant %s: %w", b.BatchID, b.Tenant, err)
				}
				exist = append(exist, start+i)
			case <-ctx.Done():
				return nil, fmt.Errorf("write receipt %s: %w", b.BatchID, ctx.Err())
			}
		}
		if err := w.mergeAll(ctx, batches, exist, o, counted); err != nil {
			return nil, err
		}
	}
	return counted, nil
}

// mergeAll merges o into the existing receipts of batches[i] for i in idx,
// setting counted[i].
func (w *Writer) mergeAll(ctx context.Context, batches []Batch, idx []int, o Outcome, counted []bool) error {
	if len(idx) == 0 {
		return nil
	}
	subjects := make([]string, len(idx))
	for j, i := range idx {
		subjects[j] = subject(batches[i])
	}
	msgs, err := jetstreamext.GetLastMsgsFor(ctx, w.js, "KV_"+Bucket, subjects)
	if err != nil {
		return fmt.Errorf("read %d receipts: %w", len(idx), err)
	}
	last := make(map[string]*jetstream.RawStreamMsg, len(idx))
	for m, err := range msgs {
		if err != nil {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				break
			}
			return fmt.Errorf("read %d receipts: %w", len(idx), err)
		}
		last[m.Subject] = m
	}
	for _, i := range idx {
		b := batches[i]
		if m := last[subject(b)]; m != nil && len(m.Header.Get(kvOperation)) == 0 {
			if rec, err := decode(m.Data); err == nil {
				ob := o
				ob.Events = b.Events
				before := len(rec.Objects)
				status := rec.Status
				rec.merge(ob)
				if len(rec.Objects) == before && rec.Status == status {
					counted[i] = rec.CountedIn == o.ID
					continue
				}
			}
		}
		if counted[i], err = w.merge(ctx, b, o); err != nil {
			return err
		}
	}
	return nil
}

// kvOperation is the header of a KV delete or purge marker.
const kvOperation = "KV-Operation"

func subject(b Batch) string { return "$KV." + Bucket + "." + Key(b.Tenant, b.BatchID) }

// create publishes the receipt of b's first outcome, refused by the server
// if the key holds one already.
func (w *Writer) create(b Batch, o Outcome) (jetstream.PubAckFuture, error) {
	o.Events = b.Events
	data, err := json.Marshal(newRecord(b.BatchID, o))
	if err != nil {
		return nil, fmt.Errorf("encode receipt %s: %w", b.BatchID, err)
	}
	m := nats.NewMsg(subject(b))
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
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
