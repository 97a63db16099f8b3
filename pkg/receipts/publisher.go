package receipts

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publisher is a JetStream context of its own for one Record call at a
// time, so that the call can wait for all its puts at once
// (PublishAsyncComplete) instead of for each put's future, whose channels
// cost two allocations per put. A failed put is seen by its error handler.
type publisher struct {
	js jetstream.JetStream
	mu sync.Mutex
	// err is the first failed put since the last wait.
	err error
}

func newPublisher(nc *nats.Conn, opts jetstream.JetStreamOptions) (*publisher, error) {
	p := &publisher{}
	onErr := jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.err == nil {
			p.err = fmt.Errorf("write receipt %s: %w", m.Subject, err)
		}
	})
	var err error
	switch {
	case opts.APIPrefix != "":
		p.js, err = jetstream.NewWithAPIPrefix(nc, opts.APIPrefix, onErr)
	case opts.Domain != "":
		p.js, err = jetstream.NewWithDomain(nc, opts.Domain, onErr)
	default:
		p.js, err = jetstream.New(nc, onErr)
	}
	if err != nil {
		return nil, fmt.Errorf("receipt publisher: %w", err)
	}
	return p, nil
}

// put publishes data on subject without waiting for its PubAck.
func (p *publisher) put(subject string, data []byte) error {
	if _, err := p.js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: data}); err != nil {
		return fmt.Errorf("write receipt %s: %w", subject, err)
	}
	return nil
}

// wait returns when every put is acknowledged, with the first that failed.
// When ctx ends first, the publisher must not be used again (close it).
func (p *publisher) wait(ctx context.Context) error {
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
		return fmt.Errorf("write receipts: %w", ctx.Err())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.err
	p.err = nil
	return err
}

// close drops the publisher's reply subscription and pending puts.
func (p *publisher) close() { p.js.CleanupPublisher() }

// publishers are the idle publishers of a Writer.
type publishers struct {
	nc   *nats.Conn
	opts jetstream.JetStreamOptions
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
	return newPublisher(ps.nc, ps.opts)
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
