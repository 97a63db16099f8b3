package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/batch"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

// Config wires the pipeline.
type Config struct {
	Consumer jetstream.Consumer
	JS       jetstream.JetStream // for dead letters
	Sink     *sink.Sink
	Limits   batch.Limits
	// PullMaxMessages bounds messages buffered by the pull subscription.
	PullMaxMessages int
	// ShutdownTimeout bounds the final flush after the context ends.
	ShutdownTimeout time.Duration
	Metrics         *Metrics
	Log             *slog.Logger
}

// Pipeline consumes, batches, uploads and acknowledges.
type Pipeline struct {
	cfg Config
	b   *batch.Batcher
}

// New returns a pipeline.
func New(cfg Config) *Pipeline {
	if cfg.PullMaxMessages <= 0 {
		cfg.PullMaxMessages = 512
	}
	return &Pipeline{cfg: cfg, b: batch.New(cfg.Limits)}
}

// Run consumes until ctx ends, then stops pulling, flushes every open batch
// (within ShutdownTimeout) and returns. Messages it could not store stay
// unacknowledged and are redelivered.
func (p *Pipeline) Run(ctx context.Context) error {
	msgs := make(chan jetstream.Msg, p.cfg.PullMaxMessages)
	cc, err := p.cfg.Consumer.Consume(func(m jetstream.Msg) {
		msgs <- m
	}, jetstream.PullMaxMessages(p.cfg.PullMaxMessages))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}

	// Uploads outlive ctx by at most ShutdownTimeout, so a batch being
	// uploaded when the shutdown starts still gets stored and acknowledged.
	uctx, cancelUploads := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelUploads()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(p.cfg.ShutdownTimeout, cancelUploads) })
	defer stop()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d, ok := p.b.NextDue(time.Now())
		if !ok {
			d = time.Hour
		}
		timer.Reset(d)
		select {
		case m := <-msgs:
			if full := p.add(uctx, m); full != nil {
				p.flush(uctx, full)
			}
		case <-timer.C:
			for _, bt := range p.b.Due(time.Now()) {
				p.flush(uctx, bt)
			}
		case <-ctx.Done():
			return p.drain(uctx, cc, msgs)
		}
	}
}

// drain is the shutdown order: stop pulling, batch what was already
// delivered, flush every batch, acknowledge.
func (p *Pipeline) drain(ctx context.Context, cc jetstream.ConsumeContext, msgs chan jetstream.Msg) error {
	cc.Stop()
	for closed := false; !closed; {
		select {
		case m := <-msgs: // the consume callback may be blocked sending this
			if full := p.add(ctx, m); full != nil {
				p.flush(ctx, full)
			}
		case <-cc.Closed():
			closed = true
		}
	}
	for len(msgs) > 0 {
		if full := p.add(ctx, <-msgs); full != nil {
			p.flush(ctx, full)
		}
	}
	var failed int
	for _, bt := range p.b.All() {
		if !p.flush(ctx, bt) {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("shutdown: %d batches not stored; their messages will be redelivered", failed)
	}
	return nil
}

// add batches one message; a message that can never be stored goes to the
// dead-letter stream.
func (p *Pipeline) add(ctx context.Context, m jetstream.Msg) *batch.Batch {
	md, err := m.Metadata()
	if err != nil {
		p.deadLetter(ctx, m, 0, fmt.Errorf("message metadata: %w", err))
		return nil
	}
	meta, err := envelope.MetaFromHeaders(m.Headers())
	if err != nil {
		p.deadLetter(ctx, m, md.NumDelivered, err)
		return nil
	}
	return p.b.Add(batch.Item{Meta: meta, Seq: md.Sequence.Stream, Body: m.Data(), Msg: m}, time.Now())
}

// flush uploads a batch, retrying with backoff until it is stored or ctx
// ends, and acknowledges its messages once it is stored. While retrying it
// keeps the messages alive with InProgress.
func (p *Pipeline) flush(ctx context.Context, bt *batch.Batch) bool {
	obj, err := p.cfg.Sink.Encode(bt)
	if err != nil {
		// Only a compressor failure gets here; it will not heal by retrying.
		for _, it := range bt.Items {
			p.deadLetter(ctx, it.Msg, 0, err)
		}
		return true
	}
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err = p.cfg.Sink.Put(ctx, obj)
		p.cfg.Metrics.uploadSeconds.Observe(time.Since(start).Seconds())
		if err == nil {
			break
		}
		p.cfg.Log.Warn("upload failed; retrying", "key", obj.Key, "attempt", attempt, "err", err)
		for _, it := range bt.Items {
			_ = it.Msg.InProgress()
		}
		select {
		case <-ctx.Done():
			p.nakAll(bt)
			return false
		case <-time.After(backoff + rand.N(backoff/2)):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
	p.cfg.Metrics.objects.Inc()
	p.cfg.Metrics.objectBytes.Observe(float64(len(obj.Body)))
	p.cfg.Metrics.events.Add(float64(obj.Events))
	for _, it := range bt.Items {
		if err := it.Msg.Ack(); err != nil {
			// The object is stored; a lost ack means a redelivery, which
			// rewrites the same lines with the same ids.
			p.cfg.Log.Warn("ack after upload failed", "key", obj.Key, "err", err)
		}
	}
	p.cfg.Metrics.messages.WithLabelValues("acked").Add(float64(len(bt.Items)))
	p.cfg.Log.Debug("object stored", "key", obj.Key, "events", obj.Events, "bytes", len(obj.Body))
	return true
}

func (p *Pipeline) nakAll(bt *batch.Batch) {
	for _, it := range bt.Items {
		_ = it.Msg.Nak()
	}
	p.cfg.Metrics.messages.WithLabelValues("retried").Add(float64(len(bt.Items)))
}

// deadLetter copies m to the dead-letter stream with the reason, then
// terminates it. If the copy fails, m is left for redelivery instead.
func (p *Pipeline) deadLetter(ctx context.Context, m jetstream.Msg, deliveries uint64, cause error) {
	tenant := m.Headers().Get(stream.HeaderTenant)
	if !envelope.ValidTenant(tenant) {
		tenant = "_invalid"
	}
	dl := nats.NewMsg(stream.DLQSubject(tenant))
	for k, v := range m.Headers() {
		if k != stream.HeaderMsgID {
			dl.Header[k] = v
		}
	}
	dl.Header.Set(stream.HeaderError, cause.Error())
	dl.Header.Set(stream.HeaderDeliveries, strconv.FormatUint(deliveries, 10))
	dl.Data = m.Data()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := p.cfg.JS.PublishMsg(pctx, dl); err != nil {
		p.cfg.Log.Error("dead-letter publish failed; message left for redelivery", "err", errors.Join(err, cause))
		_ = m.Nak()
		return
	}
	_ = m.Term()
	p.cfg.Metrics.messages.WithLabelValues("dead_lettered").Inc()
	p.cfg.Log.Warn("message dead-lettered", "subject", m.Subject(), "reason", cause)
}
