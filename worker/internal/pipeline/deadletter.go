package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// deadLetter copies m to the dead-letter stream with the reason, then
// terminates it. If the copy fails, m is Nak'ed for redelivery instead:
// nothing is dropped.
func (p *Pipeline) deadLetter(ctx context.Context, m jetstream.Msg, deliveries uint64, cause error) {
	var seq uint64
	if md, err := m.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	err := publishDeadLetter(ctx, p.cfg.JS, m.Subject(), m.Headers(), m.Data(), seq, deliveries, cause)
	if err != nil {
		p.cfg.Log.Error("dead-letter publish failed; message left for redelivery", "seq", seq, "err", err)
		_ = m.Nak()
		p.cfg.Metrics.messages.WithLabelValues("retried").Inc()
		return
	}
	_ = m.Term()
	p.cfg.Metrics.messages.WithLabelValues("dead_lettered").Inc()
	p.cfg.Log.Warn("message dead-lettered", "subject", m.Subject(), "seq", seq, "deliveries", deliveries, "reason", cause)
}

// publishDeadLetter publishes a copy of a message to SLUICE_DLQ on
// sluice.dlq.<tenant> (the tenant of its header, else of its subject) with its original headers plus Sluice-Error and
// Sluice-Deliveries. Its Nats-Msg-Id is derived from the stream sequence,
// so two workers dead-lettering the same message store it once.
func publishDeadLetter(ctx context.Context, js jetstream.JetStream, subject string, h nats.Header, data []byte, seq, deliveries uint64, cause error) error {
	tenant := h.Get(stream.HeaderTenant)
	if !envelope.ValidTenant(tenant) { // then the subject's, sluice.events.<tenant>
		tenant = subject[strings.LastIndexByte(subject, '.')+1:]
	}
	if !envelope.ValidTenant(tenant) {
		tenant = "_invalid"
	}
	dl := nats.NewMsg(stream.DLQSubject(tenant))
	for k, v := range h {
		dl.Header[k] = v
	}
	dl.Header.Set(stream.HeaderMsgID, "dlq-"+strconv.FormatUint(seq, 10)+"-"+h.Get(stream.HeaderMsgID))
	dl.Header.Set(stream.HeaderError, cause.Error())
	dl.Header.Set(stream.HeaderDeliveries, strconv.FormatUint(deliveries, 10))
	dl.Data = data
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(pctx, dl); err != nil {
		return fmt.Errorf("publish dead letter of seq %d: %w", seq, errors.Join(err, cause))
	}
	return nil
}

// MaxDeliveriesSubject is where the server announces a message of the
// consumer that reached MaxDeliver.
func MaxDeliveriesSubject(streamName, consumer string) string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + streamName + "." + consumer
}

// WatchMaxDeliveries dead-letters messages whose last allowed delivery was
// lost (the worker holding it died): the server never delivers them again
// and announces them with an advisory. For each one it reads the message
// from the stream, copies it to the dead-letter stream and deletes it from
// the events stream. Replicas share the work through a queue group. It
// returns when ctx ends.
//
// The advisory is a plain NATS message: if no worker is connected when it is
// sent, the message stays in the events stream (see the README).
func WatchMaxDeliveries(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, streamName, consumer string, m *Metrics, log *slog.Logger) error {
	advisories := make(chan *nats.Msg, 64)
	sub, err := nc.ChanQueueSubscribe(MaxDeliveriesSubject(streamName, consumer), "sluice-dlq", advisories)
	if err != nil {
		return fmt.Errorf("subscribe to max-deliveries advisories: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case a := <-advisories:
			if err := deadLetterExhausted(ctx, js, streamName, a.Data); err != nil {
				log.Error("dead-letter after max deliveries failed", "err", err)
				continue
			}
			m.messages.WithLabelValues("dead_lettered").Inc()
		}
	}
}

func deadLetterExhausted(ctx context.Context, js jetstream.JetStream, streamName string, advisory []byte) error {
	var adv struct {
		StreamSeq  uint64 `json:"stream_seq"`
		Deliveries uint64 `json:"deliveries"`
	}
	if err := json.Unmarshal(advisory, &adv); err != nil {
		return fmt.Errorf("decode advisory: %w", err)
	}
	st, err := js.Stream(ctx, streamName)
	if err != nil {
		return fmt.Errorf("stream %s: %w", streamName, err)
	}
	raw, err := st.GetMsg(ctx, adv.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // another worker got there first
	}
	if err != nil {
		return fmt.Errorf("get seq %d: %w", adv.StreamSeq, err)
	}
	cause := fmt.Errorf("delivered %d times without being stored (MaxDeliver reached)", adv.Deliveries)
	if err := publishDeadLetter(ctx, js, raw.Subject, raw.Header, raw.Data, adv.StreamSeq, adv.Deliveries, cause); err != nil {
		return err
	}
	if err := st.DeleteMsg(ctx, adv.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("delete seq %d after dead-lettering: %w", adv.StreamSeq, err)
	}
	return nil
}

// WatchLag sets the consumer pending gauge (messages not yet delivered plus
// delivered and not yet acknowledged) from the consumer info every interval,
// until ctx ends.
func WatchLag(ctx context.Context, cons jetstream.Consumer, every time.Duration, m *Metrics) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ictx, cancel := context.WithTimeout(ctx, every)
		info, err := cons.Info(ictx)
		cancel()
		if err == nil {
			m.pending.Set(float64(info.NumPending) + float64(info.NumAckPending))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
