package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/stream"
)

// PurgeFilter chooses the dead letters Purge deletes. At least one of
// Tenant, OlderThan or All must be set.
type PurgeFilter struct {
	// Tenant keeps only sluice.dlq.<Tenant>.
	Tenant string
	// OlderThan keeps only dead letters stored more than this long ago.
	OlderThan time.Duration
	// All allows a purge with neither Tenant nor OlderThan.
	All bool
}

// Purge deletes, in one request to the server, the dead letters f keeps
// among those stored when it began, and returns how many it deleted. The
// age bound is found by a binary search on sequence for the first message
// stored at or after now-OlderThan: JetStream stamps messages as it stores
// them, so times grow with sequences.
func (d *DLQ) Purge(ctx context.Context, now time.Time, f PurgeFilter) (uint64, error) {
	if f.Tenant == "" && f.OlderThan <= 0 && !f.All {
		return 0, ErrNoFilter
	}
	subject, err := Filter{Tenant: f.Tenant}.subject()
	if err != nil {
		return 0, err
	}
	info, err := d.st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream info %s: %w", stream.DLQStream, err)
	}
	if info.State.Msgs == 0 {
		return 0, nil
	}
	// Purge below bound only: what is dead-lettered from now on stays.
	bound := info.State.LastSeq + 1
	if f.OlderThan > 0 {
		if bound, err = d.firstStoredAtOrAfter(ctx, info.State.FirstSeq, bound, now.Add(-f.OlderThan)); err != nil {
			return 0, err
		}
	}
	req := jetstream.StreamPurgeRequest{Sequence: bound}
	if f.Tenant != "" {
		req.Subject = subject
	}
	return d.purge(ctx, req)
}

// firstStoredAtOrAfter is the lowest sequence in [lo, hi) from which every
// message was stored at or after t; hi when there is none.
func (d *DLQ) firstStoredAtOrAfter(ctx context.Context, lo, hi uint64, t time.Time) (uint64, error) {
	everyTenant := stream.DLQSubject(">")
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := d.st.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(everyTenant))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			hi = mid // nothing is left from mid on
		case err != nil:
			return 0, fmt.Errorf("read %s from seq %d: %w", stream.DLQStream, mid, err)
		case m.Time.Before(t):
			lo = m.Sequence + 1
		default:
			hi = mid // [mid, m.Sequence) holds no message
		}
	}
	return lo, nil
}

// purge sends the purge request itself rather than through Stream.Purge,
// which drops the server's count of purged messages.
func (d *DLQ) purge(ctx context.Context, req jetstream.StreamPurgeRequest) (uint64, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second) // a lost answer must not hang the caller
		defer cancel()
	}
	subject := jetstream.DefaultAPIPrefix + "STREAM.PURGE." + stream.DLQStream
	msg, err := d.js.Conn().RequestWithContext(ctx, subject, body)
	if err != nil {
		return 0, fmt.Errorf("purge %s: %w", stream.DLQStream, err)
	}
	var resp struct {
		Error  *jetstream.APIError `json:"error"`
		Purged uint64              `json:"purged"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, fmt.Errorf("purge %s: decode answer: %w", stream.DLQStream, err)
	}
	if resp.Error != nil {
		return 0, fmt.Errorf("purge %s: %w", stream.DLQStream, resp.Error)
	}
	return resp.Purged, nil
}
