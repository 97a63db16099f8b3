package manifest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// Whether a tenant-hour is settled, from the events stream itself.
//
// The events stream is a work queue: a message leaves it once acked
// (stored in S3 first) or terminated (dead-lettered first), whichever
// consumer delivered it: its partition's under any partition count, or
// the unpartitioned one. So the hour is settled when the stream holds no
// message of it. The gateway stamps Sluice-Received-At once the body is
// decoded, just before it publishes (after a coalescing wait, if any), so
// messages are stored in received order, give or take the time from the
// stamp to the store (a few SLUICE_PUBLISH_TIMEOUTs, well under the
// grace): every message of the hour is stored before any received at or
// after the hour's end plus the grace. Reading the tenant's stored messages from
// the oldest, the hour is settled at the first one received that late (or
// when none is left), and not settled at the first one of the hour.
// Messages of other hours before that are skipped, up to settleScan of
// them; past that (a backlog), the hour is checked again next round.

// settleScan bounds the messages read per check.
const settleScan = 16

// settled reports whether the stream st holds no message of tenant's hour
// any more.
func settled(ctx context.Context, st jetstream.Stream, tenant string, hour time.Time, grace time.Duration) (bool, error) {
	end := hour.Add(time.Hour + grace)
	seq := uint64(1)
	for range settleScan {
		m, err := stream.NextStored(ctx, st, seq, tenant)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("messages of %s left in %s: %w", tenant, st.CachedInfo().Config.Name, err)
		}
		at := m.Time // a message without metadata: when it was stored
		if meta, err := envelope.MetaFromHeaders(m.Header); err == nil {
			if meta.ReceivedAt.Truncate(time.Hour).Equal(hour) {
				return false, nil
			}
			at = meta.ReceivedAt
		}
		if !at.Before(end) {
			return true, nil
		}
		seq = m.Sequence + 1
	}
	return false, nil
}
