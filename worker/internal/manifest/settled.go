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

// Whether a tenant-hour is settled, from the events stream itself: a work
// queue keeps a message until it is acked or terminated, and messages are
// stored in received order give or take far less than the grace. Reading
// the tenant's stored messages from the oldest, the hour is settled at the
// first one received at or after its end plus the grace (or none left), not
// at the first one of the hour; past settleScan messages it waits a round.

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
