package receipts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publisher publishes puts for one Record call at a time and waits for
// all their PubAcks at once. Every put asks for its PubAck on the
// publisher's one inbox: only their number and the first failure matter,
// so an answer is not matched to its put, and a PubAck ({"stream":…,
// "seq":…}) is not decoded; only an answer naming an error is.
type publisher struct {
	nc    *nats.Conn
	inbox string
	sub   *nats.Subscription
	// acked is signalled when pending drops to zero.
	acked chan struct{}

	mu      sync.Mutex
	pending int
	err     error // the first failed put since the last wait
}

func newPublisher(nc *nats.Conn) (*publisher, error) {
	p := &publisher{nc: nc, inbox: nc.NewInbox(), acked: make(chan struct{}, 1)}
	sub, err := nc.Subscribe(p.inbox, p.answered)
	if err != nil {
		return nil, fmt.Errorf("subscribe to receipt PubAcks: %w", err)
	}
	p.sub = sub
	return p, nil
}

// put publishes data on subject without waiting for its PubAck.
func (p *publisher) put(subject string, data []byte) error {
	p.mu.Lock()
	p.pending++
	p.mu.Unlock()
	if err := p.nc.PublishMsg(&nats.Msg{Subject: subject, Reply: p.inbox, Data: data}); err != nil {
		p.answer(fmt.Errorf("write receipt %s: %w", subject, err))
		return err
	}
	return nil
}

// answered takes the answer to one put.
func (p *publisher) answered(m *nats.Msg) { p.answer(ackError(m)) }

func (p *publisher) answer(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending--
	if p.err == nil && err != nil {
		p.err = fmt.Errorf("write receipt: %w", err)
	}
	if p.pending == 0 {
		select {
		case p.acked <- struct{}{}:
		default:
		}
	}
}

// ackError is the failure an answer to a put reports, or nil for a PubAck.
func ackError(m *nats.Msg) error {
	if len(m.Data) == 0 { // a status, such as 503 when no stream took the put
		return fmt.Errorf("status %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
	}
	if !bytes.Contains(m.Data, []byte(`"error"`)) {
		return nil
	}
	var r struct {
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &r); err != nil || r.Error == nil {
		return fmt.Errorf("unexpected answer %q", m.Data)
	}
	return r.Error
}

// wait returns when every put is answered, with the first that failed.
// When ctx ends first, the publisher must not be used again (close it).
func (p *publisher) wait(ctx context.Context) error {
	for {
		p.mu.Lock()
		if p.pending == 0 {
			err := p.err
			p.err = nil
			p.mu.Unlock()
			return err
		}
		p.mu.Unlock()
		select {
		case <-p.acked:
		case <-ctx.Done():
			return fmt.Errorf("write receipts: %w", ctx.Err())
		}
	}
}

// close drops the publisher's subscription.
func (p *publisher) close() { _ = p.sub.Unsubscribe() }

// publishers are the idle publishers of a Writer.
type publishers struct {
	nc   *nats.Conn
	mu   sync.Mutex
	idle []*publisher
}

// get returns an idle publisher, or a new one.
func (ps *publishers) get() (*publisher, error) {
	ps.mu.Lock()
	if n := len(ps.idle); n > 0 {
		p := ps.idle[n-1]
		ps.idle = ps.idle[:n-1]
		ps.mu.Unlock()
		return p, nil
	}
	ps.mu.Unlock()
	return newPublisher(ps.nc)
}

// put makes p idle again, or closes it when its last wait did not end.
func (ps *publishers) put(p *publisher, done bool) {
	if !done {
		p.close()
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.idle = append(ps.idle, p)
}
