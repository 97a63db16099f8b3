package stream

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The unpartitioned consumer.
//
// A version from before partitions stored messages on
// sluice.events.<tenant> and read them with one consumer, named Consumer
// (or SLUICE_CONSUMER). After the upgrade that consumer reads the messages
// stored then, and exists only while any of them is left: a worker that
// starts creates or keeps it when such messages are stored, and deletes it
// when none is.
//
// Its filter is the list of their subjects, never sluice.events.*: that
// is the stream's own subject, and the server takes a consumer filtered on
// it for an unfiltered one, which still wants every message stored after
// the last one it looked at, partitioned ones included. A work-queue
// stream keeps a message some consumer still wants, so messages acked by
// their partition's consumer would stay stored, acked and never delivered
// again (no later check of the server removes them from a work-queue
// stream). The list cannot grow: the subject transform gives every message
// stored since the upgrade a partition token. Workers still reading it
// when it is deleted read nothing more from it (retiring).

// unpartitionedSubject matches the messages stored without a partition
// token.
const unpartitionedSubject = eventsSubjectPrefix + "*"

// ensureUnpartitioned returns the unpartitioned consumer, filtered on the
// subjects of the messages stored without a partition token, when there
// are any; else it deletes the consumer if it exists, and returns nil. A
// consumer left unfiltered by the version before partitions may have
// delivered partitioned messages not yet acked: deleted, it hands them to
// their partition's consumer, which can store them a second time.
func ensureUnpartitioned(ctx context.Context, js jetstream.JetStream, streamName string, cc ConsumerConfig) (jetstream.Consumer, error) {
	if cc.Name == "" {
		cc.Name = Consumer
	}
	name := streamNameOr(streamName)
	st, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("messages without a partition in %s: %w", name, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(unpartitionedSubject))
	if err != nil {
		return nil, fmt.Errorf("messages without a partition in %s: %w", name, err)
	}
	subjects := slices.Sorted(maps.Keys(info.State.Subjects))
	if len(subjects) == 0 {
		if err := st.DeleteConsumer(ctx, cc.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("delete consumer %s of %s, nothing left for it: %w", cc.Name, name, err)
		}
		return nil, nil
	}
	cc.filters, cc.pinned = subjects, true
	c, err := EnsureConsumer(ctx, js, streamName, cc)
	if err != nil {
		return nil, err
	}
	return retiring{c}, nil
}

// retiring is the unpartitioned consumer as the workers read it. Once a
// worker that starts finds nothing left for it and deletes it, it has
// nothing more to deliver to the workers still reading it: their fetches
// end without a message (after a second, as a fetch that waited would),
// rather than failing on the deleted consumer.
type retiring struct{ jetstream.Consumer }

func (c retiring) Fetch(batch int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	mb, err := c.Consumer.Fetch(batch, opts...)
	if retired(err) {
		time.Sleep(time.Second)
		return nil, jetstream.ErrNoMessages
	}
	if err != nil {
		return nil, err
	}
	return retiringBatch{mb}, nil
}

type retiringBatch struct{ jetstream.MessageBatch }

func (b retiringBatch) Error() error {
	if err := b.MessageBatch.Error(); !retired(err) {
		return err
	}
	return jetstream.ErrNoMessages
}

// retired reports whether err says the consumer is gone: deleted during
// the fetch, or not there (the pull request then has no responder).
func retired(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, nats.ErrNoResponders)
}
