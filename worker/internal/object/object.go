package object

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/envelope"
)

// Limits decide when an open object is cut.
type Limits struct {
	MaxBytes  int64 // uncompressed bytes of the message bodies
	MaxEvents int
	MaxAge    time.Duration
}

// Item is one stream message in an object.
type Item struct {
	Meta envelope.Meta
	Seq  uint64 // stream sequence
	Body []byte // NDJSON events
	Msg  jetstream.Msg
	// Stream is the StreamTag of the stream incarnation the message was
	// delivered from: messages of two incarnations never share an object.
	Stream string
	// Source is the consumer that delivered it (one per partition):
	// messages of two consumers never share an object, so a partition
	// handed to another worker takes exactly its own open objects along.
	Source string
	// Landed is set for a redelivered message that falls inside an object
	// already stored: it is gathered only with the other redelivered
	// messages of that object, so the same object is formed again.
	Landed *Landed
}

// Landed describes a stored object by its key, its key's sequence range
// and its metadata event count.
type Landed struct {
	Key               string
	FirstSeq, LastSeq uint64
	Events            int
}

// Reason says why an object was cut.
type Reason string

// Why objects are cut.
const (
	ReasonBytes    Reason = "bytes"
	ReasonEvents   Reason = "events"
	ReasonAge      Reason = "age"
	ReasonPressure Reason = "pressure" // in-flight bytes reached their bound
	ReasonShutdown Reason = "shutdown"
	ReasonRegather Reason = "regather" // every message of a stored object is back
	// ReasonHandover: the object's partition goes to another worker.
	ReasonHandover Reason = "handover"
)

// Partition identifies where an object goes.
type Partition struct {
	Tenant string
	Hour   time.Time
	// Stream is the stream incarnation of the object's messages (Item.Stream).
	Stream string
	// Source is the consumer of the object's messages (Item.Source).
	Source string
	// Regather is the key of the stored object whose redelivered messages
	// this object gathers again; empty for fresh messages. Two objects can
	// share a first sequence (a split half and the object it split from),
	// so it is the whole key.
	Regather string
}

// PartitionOf is the partition of a message of incarnation stream whose
// request was received at m.ReceivedAt.
func PartitionOf(m envelope.Meta, stream string) Partition {
	return Partition{Tenant: m.Tenant, Hour: m.ReceivedAt.UTC().Truncate(time.Hour), Stream: stream}
}

// Object is the messages of one object being gathered or uploaded.
type Object struct {
	Partition
	Items    []Item
	Bytes    int64
	Events   int
	Opened   time.Time
	FirstSeq uint64
	LastSeq  uint64
	Reason   Reason
}

func (o *Object) add(it Item) {
	if len(o.Items) == 0 || it.Seq < o.FirstSeq {
		o.FirstSeq = it.Seq
	}
	if it.Seq > o.LastSeq {
		o.LastSeq = it.Seq
	}
	o.Items = append(o.Items, it)
	o.Bytes += int64(len(it.Body))
	o.Events += it.Meta.EventCount
}

// Open holds a worker's open objects, one per partition. It is not safe
// for concurrent use.
type Open struct {
	lim  Limits
	open map[Partition]*Object
}

// NewOpen returns an Open with no open object.
func NewOpen(lim Limits) *Open {
	return &Open{lim: lim, open: map[Partition]*Object{}}
}

// Add puts it into its partition's open object and returns that object,
// cut (no longer open), when it reached the byte or event limit, or, for
// an object of redelivered messages of a stored one, when it holds that
// object's sequence range and event count again.
func (o *Open) Add(it Item, now time.Time) *Object {
	p := PartitionOf(it.Meta, it.Stream)
	p.Source = it.Source
	if it.Landed != nil {
		p.Regather = it.Landed.Key
	}
	bt := o.open[p]
	if bt == nil {
		bt = &Object{Partition: p, Opened: now}
		o.open[p] = bt
	}
	bt.add(it)
	switch l := it.Landed; {
	case l != nil && bt.FirstSeq == l.FirstSeq && bt.LastSeq == l.LastSeq && bt.Events >= l.Events:
		bt.Reason = ReasonRegather
	case bt.Bytes >= o.lim.MaxBytes:
		bt.Reason = ReasonBytes
	case bt.Events >= o.lim.MaxEvents:
		bt.Reason = ReasonEvents
	default:
		return nil
	}
	delete(o.open, p)
	return bt
}

// Due cuts and returns the open objects whose age reached MaxAge at now.
func (o *Open) Due(now time.Time) []*Object {
	var out []*Object
	for p, bt := range o.open {
		if now.Sub(bt.Opened) >= o.lim.MaxAge {
			bt.Reason = ReasonAge
			out = append(out, bt)
			delete(o.open, p)
		}
	}
	return out
}

// NextDue is how long until the oldest open object is due; ok is false when
// nothing is open.
func (o *Open) NextDue(now time.Time) (d time.Duration, ok bool) {
	for _, bt := range o.open {
		left := o.lim.MaxAge - now.Sub(bt.Opened)
		if !ok || left < d {
			d, ok = left, true
		}
	}
	return max(d, 0), ok
}

// Largest cuts and returns the open object holding the most bytes, for
// reason; nil when nothing is open.
func (o *Open) Largest(reason Reason) *Object {
	var big *Object
	for _, bt := range o.open {
		if big == nil || bt.Bytes > big.Bytes {
			big = bt
		}
	}
	if big != nil {
		big.Reason = reason
		delete(o.open, big.Partition)
	}
	return big
}

// Oldest is when the oldest open object opened; ok is false when nothing is
// open.
func (o *Open) Oldest() (opened time.Time, ok bool) {
	for _, bt := range o.open {
		if !ok || bt.Opened.Before(opened) {
			opened, ok = bt.Opened, true
		}
	}
	return opened, ok
}

// Each calls fn for every open object, without cutting it.
func (o *Open) Each(fn func(*Object)) {
	for _, bt := range o.open {
		fn(bt)
	}
}

// From cuts and returns every open object of source, for reason.
func (o *Open) From(source string, reason Reason) []*Object {
	var out []*Object
	for p, bt := range o.open {
		if p.Source == source {
			bt.Reason = reason
			out = append(out, bt)
			delete(o.open, p)
		}
	}
	return out
}

// All cuts and returns every open object, for reason.
func (o *Open) All(reason Reason) []*Object {
	out := make([]*Object, 0, len(o.open))
	for p, bt := range o.open {
		bt.Reason = reason
		out = append(out, bt)
		delete(o.open, p)
	}
	return out
}

// Len is the number of open objects.
func (o *Open) Len() int { return len(o.open) }

// Split divides an object of two or more items into two halves in item
// order, each with its own sequence range. The pipeline splits an object
// whose key already holds a different one.
func (o *Object) Split() (*Object, *Object) {
	mid := len(o.Items) / 2
	lo := &Object{Partition: o.Partition, Opened: o.Opened, Reason: o.Reason}
	hi := &Object{Partition: o.Partition, Opened: o.Opened, Reason: o.Reason}
	for i, it := range o.Items {
		if i < mid {
			lo.add(it)
		} else {
			hi.add(it)
		}
	}
	return lo, hi
}
