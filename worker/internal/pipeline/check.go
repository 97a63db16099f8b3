package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// check turns a message into an object item, tagged with its stream
// incarnation. A message that can never be stored, or that reached
// MaxDeliver, goes to the dead-letter stream instead and its bytes are
// released. ok is false too for a redelivered message: it goes to its
// lookup, which hands it to Run.
func (p *Pipeline) check(ctx context.Context, m jetstream.Msg, source string) (object.Item, bool) {
	md, err := m.Metadata()
	var (
		deliveries uint64
		tag        string
	)
	if err != nil {
		err = fmt.Errorf("message metadata: %w", err)
	} else {
		var tagged bool
		if tag, tagged = p.streamOf(ctx, m, md); !tagged {
			p.budget.release(heldBytes(m.Data()))
			return object.Item{}, false
		}
		deliveries = md.NumDelivered
		if p.cfg.MaxDeliver > 0 && deliveries >= uint64(p.cfg.MaxDeliver) {
			counted, known := p.countedDeliveries(ctx, m, md, tag) // less hand-backs (handback.go)
			if !known {
				p.budget.release(heldBytes(m.Data()))
				return object.Item{}, false
			}
			if counted >= uint64(p.cfg.MaxDeliver) {
				err = fmt.Errorf("delivered %d times (%d counted), MaxDeliver is %d", deliveries, counted, p.cfg.MaxDeliver)
			}
		}
	}
	var meta envelope.Meta
	if err == nil {
		meta, err = envelope.MetaOf(m.Subject(), m.Headers())
	}
	if err == nil {
		err = checkBody(m.Data(), meta)
	}
	if err != nil {
		p.deadLetter(ctx, m, deliveries, err, tag)
		p.budget.release(heldBytes(m.Data()))
		return object.Item{}, false
	}
	it := object.Item{Meta: meta, Seq: md.Sequence.Stream, Body: m.Data(), Msg: m, Stream: tag, Source: source}
	p.holding.add(it)
	if p.cfg.Hours != nil {
		p.cfg.Hours.Seen(meta, source, it.Seq)
	}
	if deliveries > 1 {
		p.regather.add(it)
		return object.Item{}, false
	}
	return it, true
}

// errBadBody marks a body that can never be written as NDJSON lines.
var errBadBody = errors.New("undecodable body")

// checkBody makes sure a body is NDJSON of JSON objects in valid UTF-8 with
// as many lines as its headers say, so it cannot corrupt an object
// (json.Valid accepts invalid UTF-8 in strings; a replay or another
// publisher need not go through the gateway). The whole body is checked at
// once, each event only when that fails, to name it.
func checkBody(body []byte, meta envelope.Meta) error {
	valid := utf8.Valid(body)
	n := 0
	err := envelope.EachEvent(body, func(i int, ev []byte) error {
		n++
		if ev[0] != '{' || !json.Valid(ev) {
			return fmt.Errorf("%w: event %d is not a JSON object", errBadBody, i)
		}
		if !valid && !utf8.Valid(ev) {
			return fmt.Errorf("%w: event %d is not valid UTF-8", errBadBody, i)
		}
		return nil
	})
	if err == nil && n != meta.EventCount {
		header := stream.HeaderEventCount
		if meta.Coalesced() {
			header = stream.HeaderRequests
		}
		err = fmt.Errorf("%w: %d events, header %s says %d", errBadBody, n, header, meta.EventCount)
	}
	return err
}
