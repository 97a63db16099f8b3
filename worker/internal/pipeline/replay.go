package pipeline

import (
	"context"
	"time"

	"github.com/sluice-ingest/sluice/pkg/objkey"
	"github.com/sluice-ingest/sluice/worker/internal/batch"
)

// Regathering redelivered messages.
//
// A batch's key is made only of the sequences in it, so the same messages
// always give the same key, and the key is written once (If-None-Match).
// After a crash between "object stored" and "messages acked", the messages
// come back; if they were batched with newer messages they would land a
// second time under another key. To avoid that, a redelivered message is
// looked up among the objects already stored in its partition: when an
// object's sequence range holds it, it is batched only with the other
// redelivered messages of that range, and that batch is cut as soon as it
// has the object's first and last sequence and event count again. Its
// upload then meets the 412 of the stored object with the same metadata,
// and its messages are acked without a second copy. What this does not
// cover is in the README ("Duplicates and exactly-once").

// storedTTL is how long a partition's listing is reused, and how long
// lookups stop after one failed. The objects that matter were stored
// before their messages came back (AckWait later).
const storedTTL = 30 * time.Second

type storedList struct {
	at     time.Time
	keys   []objkey.Key
	events map[uint64]int // by first sequence; -1 when unreadable
}

// landedFor returns the stored object whose key's sequence range holds seq,
// or nil. It only costs S3 calls for redelivered messages. Errors mean nil:
// the message is then batched as a fresh one, which can only add a
// duplicate, never lose it. It runs on the fetch goroutine only, where the
// rest of the fetch waits without keep-alives: after a failed call it asks
// S3 nothing for storedTTL, so an S3 outage costs one failed call (at most
// 5s) per storedTTL, not one per partition or object, and does not hold
// the fetch until AckWait.
func (p *Pipeline) landedFor(ctx context.Context, part batch.Partition, seq uint64) *batch.Landed {
	if time.Now().Before(p.lookupsOff) {
		return nil
	}
	failed := func(what string, err error) *batch.Landed {
		p.cfg.Log.Warn(what+"; redelivered messages are batched as new ones for a while", "seq", seq, "err", err)
		p.lookupsOff = time.Now().Add(storedTTL)
		return nil
	}
	l := p.stored[part]
	if l == nil || time.Since(l.at) > storedTTL {
		if len(p.stored) > 1024 {
			clear(p.stored)
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		keys, err := p.cfg.Sink.Stored(lctx, part.Tenant, part.Hour)
		cancel()
		if err != nil {
			return failed("list stored objects for a redelivered message", err)
		}
		l = &storedList{at: time.Now(), keys: keys, events: map[uint64]int{}}
		p.stored[part] = l
	}
	var best *objkey.Key
	for i, k := range l.keys {
		if k.FirstSeq <= seq && seq <= k.LastSeq && (best == nil || k.LastSeq-k.FirstSeq < best.LastSeq-best.FirstSeq) {
			best = &l.keys[i]
		}
	}
	if best == nil {
		return nil
	}
	n, ok := l.events[best.FirstSeq]
	if !ok {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var err error
		n, err = p.cfg.Sink.StoredEvents(hctx, *best)
		cancel()
		if err != nil {
			l.events[best.FirstSeq] = -1
			return failed("read the event count of "+best.String(), err)
		}
		l.events[best.FirstSeq] = n
	}
	if n < 0 {
		return nil
	}
	return &batch.Landed{FirstSeq: best.FirstSeq, LastSeq: best.LastSeq, Events: n}
}
