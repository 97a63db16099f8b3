package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/envelope"
)

// Publisher is the one JetStream call the handler makes: an asynchronous
// publish whose future resolves to the PubAck. jetstream.JetStream is one;
// create it with jetstream.WithPublishAsyncMaxPending (bounded pending acks)
// and jetstream.WithPublishAsyncTimeout(Config.PublishTimeout): that timeout
// is the handler's only bound on the wait for a PubAck.
type Publisher interface {
	PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

// brokerError is a publish that failed on the broker's side: the request
// was fine, so it maps to a 503 (or 413 for a message the broker will never
// take), never to a 500.
type brokerError struct{ err error }

func (e *brokerError) Error() string { return e.err.Error() }
func (e *brokerError) Unwrap() error { return e.err }

// publish sends msg and waits for its own PubAck, at most PublishTimeout: the
// Publisher's ack timeout (WithPublishAsyncTimeout) fails the future then, so
// the wait needs no timer. Requests publish at once on one connection, none
// waiting for another's PubAck. The client's retry on "no responders" is off
// (h.pubOpts): it would resend msg.Data after the handler may have reused the
// buffer; the HTTP client retries on the 503 instead.
func (h *Handler) publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	m := h.cfg.Metrics
	m.inflightPublishes.Inc()
	start := time.Now()
	defer func() {
		m.inflightPublishes.Dec()
		m.publishSeconds.Observe(time.Since(start).Seconds())
	}()
	f, err := h.cfg.Publisher.PublishMsgAsync(msg, h.pubOpts...)
	if err != nil {
		return nil, &brokerError{fmt.Errorf("publish to %s: %w", msg.Subject, err)}
	}
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		if errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
			return nil, &brokerError{fmt.Errorf("publish to %s: no PubAck within %s: %w", msg.Subject, h.cfg.PublishTimeout, err)}
		}
		return nil, &brokerError{fmt.Errorf("publish to %s: %w", msg.Subject, err)}
	case <-ctx.Done():
		return nil, &brokerError{fmt.Errorf("publish to %s: %w", msg.Subject, ctx.Err())}
	}
}

// publishAlone publishes one request as its own message.
func (h *Handler) publishAlone(ctx context.Context, subject string, meta envelope.Meta, body []byte) (*jetstream.PubAck, error) {
	msg := nats.NewMsg(subject)
	meta.SetHeaders(msg.Header)
	msg.Data = body
	h.cfg.Metrics.requestsPerMessage.Observe(1)
	return h.publish(ctx, msg)
}
