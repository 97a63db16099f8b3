package object

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/envelope"
)

// Limits decide when a batch is flushed.
type Limits struct {
	MaxBytes  int64 // uncompressed bytes of the message bodies
	MaxEvents int
	MaxAge    time.Duration
}

// Item is one stream message in a batch.
type Item struct {
	Meta envelope.Meta
	Seq  uint64 // stream sequence
	Body []byte // NDJSON events
	Msg  jetstream.Msg
	// Stream is the StreamTag of the stream incarnation the message was
	// delivered from: messages of two incarnations never share a batch.
	Stream string
	// Source is the consumer that delivered it (one per partition):
	// messages of two consumers never share a batch, so a partition
	// handed to another worker takes exactly its own batches along.
	Source string
	// Landed is set for a redelivered message that falls inside an object
	// already stored: it is batched only with the other redelivered
	// messages of that object, so the same batch is formed again.
	Landed *Landed
}

// Landed describes a stored object by its key, its key's sequence range
// and its metadata event count.
type Landed struct {
	Key               string
	FirstSeq, LastSeq uint64
	Events            int
}

// Reason says why a batch was cut.
type Reason string

// Why batches are cut.
const (
	ReasonBytes    Reason = "bytes"
	ReasonEvents   Reason = "events"
	ReasonAge      Reason = "age"
	ReasonPressure Reason = "pressure" // in-flight bytes reached their bound
	ReasonShutdown Reason = "shutdown"
	ReasonRegather Reason = "regather" // every message of a stored object is back
	// ReasonHandover: the batch's partition goes to another worker.
	ReasonHandover Reason = "handover"
)

// Partition identifies where a batch's object goes.
type Partition struct {
	Tenant string
	Hour   time.Time
	// Stream is the stream incarnation of the batch's messages (Item.Stream).
	Stream string
	// Source is the consumer of the batch's messages (Item.Source).
	Source string
	// Regather is the key of the stored object whose redelivered messages
	// this batch gathers; empty for fresh messages. Two objects can share
	// a first sequence (a split half and the batch it split from), so it
	// is the whole key.
	Regather string
}

// PartitionOf is the partition of a message of incarnation stream whose
// request was received at m.ReceivedAt.
func PartitionOf(m envelope.Meta, stream string) Partition {
	return Partition{Tenant: m.Tenant, Hour: m.ReceivedAt.UTC().Truncate(time.Hour), Stream: stream}
}

// Batch is a group of messages that become one object.
type Batch struct {
	Partition
	Items    []Item
	Bytes    int64
	Events   int
	Opened   time.Time
	FirstSeq uint64
	LastSeq  uint64
	Reason   Reason
}

func (b *Batch) add(it Item) {
	if len(b.Items) == 0 || it.Seq < b.FirstSeq {
		b.FirstSeq = it.Seq
	}
	if it.Seq > b.LastSeq {
		b.LastSeq = it.Seq
	}
	b.Items = append(b.Items, it)
	b.Bytes += int64(len(it.Body))
	b.Events += it.Meta.EventCount
}

// Batcher holds the open batches. It is not safe for concurrent use.
type Batcher struct {
	lim  Limits
	open map[Partition]*Batch
}

// New returns an empty Batcher.
func New(lim Limits) *Batcher {
	return &Batcher{lim: lim, open: map[Partition]*Batch{}}
}

// Add puts it into its partition's batch and returns that batch, removed
// from the open set, when it reached the byte or event limit, or, for a
// batch of redelivered messages of a stored object, when it holds that
// object's sequence range and event count again.
func (b *Batcher) Add(it Item, now time.Time) *Batch {
	p := PartitionOf(it.Meta, it.Stream)
	p.Source = it.Source
	if it.Landed != nil {
		p.Regather = it.Landed.Key
	}
	bt := b.open[p]
	if bt == nil {
		bt = &Batch{Partition: p, Opened: now}
		b.open[p] = bt
	}
	bt.add(it)
	switch l := it.Landed; {
	case l != nil && bt.FirstSeq == l.FirstSeq && bt.LastSeq == l.LastSeq && bt.Events >= l.Events:
		bt.Reason = ReasonRegather
	case bt.Bytes >= b.lim.MaxBytes:
		bt.Reason = ReasonBytes
	case bt.Events >= b.lim.MaxEvents:
		bt.Reason = ReasonEvents
	default:
		return nil
	}
	delete(b.open, p)
	return bt
}

// Due removes and returns the batches whose age reached MaxAge at now.
func (b *Batcher) Due(now time.Time) []*Batch {
	var out []*Batch
	for p, bt := range b.open {
		if now.Sub(bt.Opened) >= b.lim.MaxAge {
			bt.Reason = ReasonAge
			out = append(out, bt)
			delete(b.open, p)
		}
	}
	return out
}

// NextDue is how long until the oldest open batch is due; ok is false when
// nothing is open.
func (b *Batcher) NextDue(now time.Time) (d time.Duration, ok bool) {
	for _, bt := range b.open {
		left := b.lim.MaxAge - now.Sub(bt.Opened)
		if !ok || left < d {
			d, ok = left, true
		}
	}
	return max(d, 0), ok
}

// Largest removes and returns the open batch holding the most bytes, cut
// for reason; nil when nothing is open.
func (b *Batcher) Largest(reason Reason) *Batch {
	var big *Batch
	for _, bt := range b.open {
		if big == nil || bt.Bytes > big.Bytes {
			big = bt
		}
	}
	if big != nil {
		big.Reason = reason
		delete(b.open, big.Partition)
	}
	return big
}

// Oldest is when the oldest open batch opened; ok is false when nothing is
// open.
func (b *Batcher) Oldest() (opened time.Time, ok bool) {
	for _, bt := range b.open {
		if !ok || bt.Opened.Before(opened) {
			opened, ok = bt.Opened, true
		}
	}
	return opened, ok
}

// Each calls fn for every open batch, without removing it.
func (b *Batcher) Each(fn func(*Batch)) {
	for _, bt := range b.open {
		fn(bt)
	}
}

// From removes and returns every open batch of source, cut for reason.
func (b *Batcher) From(source string, reason Reason) []*Batch {
	var out []*Batch
	for p, bt := range b.open {
		if p.Source == source {
			bt.Reason = reason
			out = append(out, bt)
			delete(b.open, p)
		}
	}
	return out
}

// All removes and returns every open batch, cut for reason.
func (b *Batcher) All(reason Reason) []*Batch {
	out := make([]*Batch, 0, len(b.open))
	for p, bt := range b.open {
		bt.Reason = reason
		out = append(out, bt)
		delete(b.open, p)
	}
	return out
}

// Len is the number of open batches.
func (b *Batcher) Len() int { return len(b.open) }

// Split cuts a batch of two or more items into two halves in item order,
// each with its own sequence range. The pipeline splits a batch whose key
// already holds a different batch.
func (b *Batch) Split() (*Batch, *Batch) {
	mid := len(b.Items) / 2
	lo := &Batch{Partition: b.Partition, Opened: b.Opened, Reason: b.Reason}
	hi := &Batch{Partition: b.Partition, Opened: b.Opened, Reason: b.Reason}
	for i, it := range b.Items {
		if i < mid {
			lo.add(it)
		} else {
			hi.add(it)
		}
	}
	return lo, hi
}
