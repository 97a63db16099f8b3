package pipeline

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/objkey"
)

// The stream's incarnation. Stream sequences name messages only within one
// life of the stream, so every message is tagged with its stream's creation
// time (objkey.StreamTag), which goes into its object's metadata, its
// object's partition and, when the plain key holds another incarnation's
// object, its key. Messages of an incarnation known to be gone are neither
// acked nor Nak'ed: the server would settle the new message of that sequence.

// incarnationTTL is how long the stream's creation time is trusted without
// other cause to read it again.
const incarnationTTL = 30 * time.Second

// incarnation tracks the events stream's incarnation. The fetch goroutines
// (one per consumer the worker reads, sources.go) share it under mu.
type incarnation struct {
	js     Streams
	stream string
	mu     sync.Mutex
	tag    string
	read   time.Time
	// lastDelivery is, per consumer, the consumer sequence of the last
	// message tagged; reconnects is the connection's reconnect count when
	// tag was read.
	lastDelivery map[string]uint64
	reconnects   uint64
	// gone holds the tags of incarnations known to be deleted; uploads
	// read it.
	gone sync.Map
}

// deleted records that incarnation tag is gone.
func (in *incarnation) deleted(tag string) {
	if tag != "" {
		in.gone.Store(tag, true)
	}
}

// isDeleted reports whether incarnation tag is known to be gone.
func (in *incarnation) isDeleted(tag string) bool {
	_, gone := in.gone.Load(tag)
	return gone
}

// of returns the incarnation of a message just delivered. It reads the
// stream's info again when it has none, when that is older than
// incarnationTTL, after a reconnect (the server may have lost its store) and
// when the consumer's delivery sequence went back (the consumer, and perhaps
// the stream, is new). The read outlives ctx: the last fetch at shutdown is
// tagged too.
func (in *incarnation) of(ctx context.Context, md *jetstream.MsgMetadata) (string, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.lastDelivery == nil {
		in.lastDelivery = map[string]uint64{}
	}
	reconnects := in.js.Conn().Stats().Reconnects
	if in.tag == "" || time.Since(in.read) > incarnationTTL || reconnects != in.reconnects || md.Sequence.Consumer <= in.lastDelivery[md.Consumer] {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		st, err := in.js.Stream(rctx, in.stream)
		cancel()
		if err != nil {
			return "", fmt.Errorf("read the creation time of stream %s: %w", in.stream, err)
		}
		tag := objkey.StreamTag(st.CachedInfo().Created)
		if tag != in.tag {
			in.deleted(in.tag)
		}
		in.tag, in.read, in.reconnects = tag, time.Now(), reconnects
	}
	in.lastDelivery[md.Consumer] = md.Sequence.Consumer
	return in.tag, nil
}

// current is the incarnation last read ("" before the first).
func (in *incarnation) current() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.tag
}

// streamOf tags a delivered message with its stream incarnation. When the
// stream cannot be read, the message is handed back to the server for a
// later delivery (its bytes are the caller's to release): a message
// gathered under a wrong incarnation could be taken for a stored object.
func (p *Pipeline) streamOf(ctx context.Context, m jetstream.Msg, md *jetstream.MsgMetadata) (string, bool) {
	before := p.inc.current()
	tag, err := p.inc.of(ctx, md)
	if err != nil {
		p.cfg.Log.Warn("stream incarnation unknown; message handed back", "seq", md.Sequence.Stream, "err", err)
		_ = m.NakWithDelay(p.cfg.RetryMax)
		p.cfg.Metrics.messages.WithLabelValues("retried").Inc()
		return "", false
	}
	if before != "" && tag != before {
		p.cfg.Log.Warn("stream recreated: its sequences start again; new objects get keys of their own where old ones hold the same sequences",
			"stream", p.inc.stream, "was", before, "now", tag)
	}
	return tag, true
}
