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

// The unpartitioned consumer reads the messages stored without a partition
// token (sluice.events.<tenant>) and exists only while any is left. Its
// filter lists their subjects, never sluice.events.*: the server takes that
// for no filter, and a work queue keeps every message such a consumer still
// wants, so partitioned messages would stay stored once acked. The list
// cannot grow: the subject transform gives every new message a partition.

// unpartitionedSubject matches the messages stored without a partition
// token.
const unpartitionedSubject = eventsSubjectPrefix + "*"

// ensureUnpartitioned returns the unpartitioned consumer, filtered on the
// subjects of the messages stored without a partition token, when there
// are any; else it deletes the consumer if it exists, and returns nil. An
// unfiltered consumer of that name may have delivered partitioned messages
// not yet acked: deleted, it hands them to their partition's consumer,
// which can store them a second time.
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
