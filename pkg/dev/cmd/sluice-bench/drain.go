package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// drainRow stops the worker, fills the stream with -drain-events events
// (-drain-per-msg per message, as the gateway would have stored them), then
// starts a new worker and measures until the stream is empty: every message
// written to S3 and acknowledged. "req/s" is messages/s.
func (st *stack) drainRow(ctx context.Context) (row, error) {
	s := st.s
	msgs := max(1, s.drainEvents/s.drainPerMsg)
	r := row{kind: "drain", label: fmt.Sprintf("worker drain, %d events/msg", s.drainPerMsg), events: s.drainPerMsg,
		load: thousands(float64(msgs)) + " msgs pre-filled"}
	if err := st.waitDrained(ctx, drainWithin); err != nil {
		return r, err
	}
	st.worker.stop(30 * time.Second)
	if err := st.fill(ctx, msgs, s.drainPerMsg); err != nil {
		return r, err
	}
	m, err := startMeter(map[string]int{"nats": st.nats.pid(), "s3": st.s3.Pid()})
	if err != nil {
		return r, err
	}
	start := time.Now()
	if err := st.startWorker(ctx); err != nil {
		return r, err
	}
	m.add("worker", st.worker.pid())
	if err := st.waitDrained(ctx, drainWithin); err != nil {
		return r, err
	}
	elapsed := time.Since(start)
	use, rest, err := m.stop()
	if err != nil {
		return r, err
	}
	r.reqs = float64(msgs) / elapsed.Seconds()
	r.evs = r.reqs * float64(s.drainPerMsg)
	r.answered = msgs
	r.rest = rest
	r.cpu, r.peak = perRequestUsage(use, msgs)
	return r, nil
}

// fill publishes msgs messages of perMsg events each to the events stream,
// with the headers the gateway sets.
func (st *stack) fill(ctx context.Context, msgs, perMsg int) error {
	var body strings.Builder
	for i := range perMsg {
		fmt.Fprintf(&body, `{"seq":%d,"level":"info","msg":"load test event","pad":"%s"}`+"\n", i, strings.Repeat("x", max(0, st.s.eventBytes-60)))
	}
	data := []byte(body.String())
	now := time.Now().UTC()
	for i := range msgs {
		m := nats.NewMsg(stream.EventsSubject("bench"))
		envelope.Meta{Tenant: "bench", BatchID: envelope.NewBatchID(), ReceivedAt: now, EventCount: perMsg}.SetHeaders(m.Header)
		m.Data = data
		if _, err := st.js.PublishMsgAsync(m); err != nil {
			return fmt.Errorf("pre-fill message %d: %w", i, err)
		}
		if i%2048 == 2047 {
			select {
			case <-st.js.PublishAsyncComplete():
			case <-ctx.Done():
				return errInterrupted
			}
		}
	}
	select {
	case <-st.js.PublishAsyncComplete():
	case <-ctx.Done():
		return errInterrupted
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("pre-fill not acknowledged within 2 minutes")
	}
	got, err := st.streamMsgs(ctx)
	if err != nil {
		return fmt.Errorf("pre-fill: %w", err)
	}
	if got != uint64(msgs) {
		return fmt.Errorf("pre-fill: the stream holds %d messages, want %d", got, msgs)
	}
	return nil
}
