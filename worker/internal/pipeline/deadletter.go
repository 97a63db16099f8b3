package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// deadLetter copies m to the dead-letter stream with the reason, then
// terminates it; when its incarnation (tag) is gone the copy is all there is
// (incarnation.go). A refused copy (DLQ full, NATS away) Naks m with
// DeadLetterRetry instead; its redelivery is still past MaxDeliver, so the
// copy is tried again. A message is always in S3, in the DLQ or deliverable.
func (p *Pipeline) deadLetter(ctx context.Context, m jetstream.Msg, deliveries uint64, cause error, tag string) {
	settle := !p.inc.isDeleted(tag)
	var seq uint64
	if md, err := m.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	err := publishDeadLetter(ctx, p.cfg.JS, m.Subject(), m.Headers(), m.Data(), tag, seq, deliveries, cause)
	if err != nil {
		p.cfg.Metrics.deadLettersRefused.Inc()
		if ok, skipped := p.refusedLog.allow(time.Now()); ok {
			p.cfg.Log.Error("dead-letter publish refused; message kept in the stream and tried again later",
				"seq", seq, "retry_in", p.cfg.DeadLetterRetry, "refused_since_last_log", skipped, "err", err)
		}
		if settle {
			_ = m.NakWithDelay(p.cfg.DeadLetterRetry)
			p.cfg.Metrics.messages.WithLabelValues("retried").Inc()
		}
		return
	}
	if !p.recordDead(ctx, m, seq, tag, cause) && settle { // its receipt first (record.go), or it stays in the stream
		_ = m.NakWithDelay(p.cfg.DeadLetterRetry)
		p.cfg.Metrics.messages.WithLabelValues("retried").Inc()
		return
	}
	if settle {
		_ = m.Term()
	}
	p.cfg.Metrics.messages.WithLabelValues("dead_lettered").Inc()
	p.cfg.Log.Warn("message dead-lettered", "subject", m.Subject(), "seq", seq, "deliveries", deliveries, "reason", cause)
}

// publishDeadLetter publishes a copy of a message to SLUICE_DLQ on
// sluice.dlq.<tenant>, the tenant of its subject (what NATS permissions
// grant, unlike a header), with its headers plus Sluice-Error and
// Sluice-Deliveries. Its Nats-Msg-Id is made of the incarnation (tag) and
// sequence, so two workers dead-lettering one message store it once.
func publishDeadLetter(ctx context.Context, js Streams, subject string, h nats.Header, data []byte, tag string, seq, deliveries uint64, cause error) error {
	tenant, ok := stream.TenantOf(subject)
	if !ok || !envelope.ValidTenant(tenant) {
		tenant = "_invalid"
	}
	dl := nats.NewMsg(stream.DLQSubject(tenant))
	for k, v := range h {
		// A publisher's expectations (Nats-Expected-Stream, -Last-Sequence,
		// ...) were about SLUICE_EVENTS: copied, the DLQ would refuse every
		// copy, and the message would never leave the stream.
		if strings.HasPrefix(k, "Nats-Expected") {
			continue
		}
		dl.Header[k] = v
	}
	dl.Header.Set(stream.HeaderMsgID, "dlq-"+tag+"-"+strconv.FormatUint(seq, 10)+"-"+h.Get(stream.HeaderMsgID))
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
