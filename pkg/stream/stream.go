package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Names of the streams and the consumer, as shown by `nats stream info`.
const (
	EventsStream = "SLUICE_EVENTS"
	DLQStream    = "SLUICE_DLQ"
	Consumer     = "sluice-workers"

	eventsSubjectPrefix = "sluice.events."
	dlqSubjectPrefix    = "sluice.dlq."
)

// Message headers. Nats-Msg-Id is JetStream's own de-duplication header.
const (
	HeaderMsgID      = jetstream.MsgIDHeader
	HeaderTenant     = "Sluice-Tenant"
	HeaderBatchID    = "Sluice-Batch-Id"
	HeaderReceivedAt = "Sluice-Received-At"
	HeaderEventCount = "Sluice-Event-Count"
	// HeaderMessageID and HeaderRequests are those of a message holding
	// several requests (coalesced by the gateway), in place of
	// Sluice-Batch-Id, Sluice-Received-At and Sluice-Event-Count.
	HeaderMessageID  = "Sluice-Message-Id"
	HeaderRequests   = "Sluice-Requests"
	HeaderError      = "Sluice-Error"
	HeaderDeliveries = "Sluice-Deliveries"
)

// DefaultDuplicateWindow is how long JetStream remembers a Nats-Msg-Id unless
// Config.DuplicateWindow says otherwise: a retry with the same
// Idempotency-Key inside it is stored once.
const DefaultDuplicateWindow = 2 * time.Minute

// EventsSubject is the subject a tenant's requests are published on.
func EventsSubject(tenant string) string { return eventsSubjectPrefix + tenant }

// DLQSubject is the subject a tenant's dead letters are published on.
func DLQSubject(tenant string) string { return dlqSubjectPrefix + tenant }

// Config sizes the streams.
type Config struct {
	// Name of the events stream; empty means EventsStream.
	Name string
	// Replicas is 1 for a single server, 3 for a production cluster.
	Replicas int
	// MaxBytes bounds the events stream; when full, publishes are refused
	// (discard new). Zero or negative means unlimited.
	MaxBytes int64
	// DuplicateWindow is how long the events stream remembers a message id
	// (every server keeps each id in memory for that long); zero means
	// DefaultDuplicateWindow.
	DuplicateWindow time.Duration
	// DLQMaxBytes bounds the dead-letter stream; when full, dead letters
	// are refused (discard new) and the worker keeps each message in the
	// events stream until one is accepted. Zero or negative means
	// unlimited.
	DLQMaxBytes int64
	// DLQMaxAge is how long a dead letter is kept; zero means until it is
	// purged.
	DLQMaxAge time.Duration
	// Partitions is the number of partitions the stream's subject
	// transform spreads tenants over (partition.go); zero means
	// DefaultPartitions.
	Partitions int
}

// PartitionCount is the number of partitions.
func (c Config) PartitionCount() int {
	if c.Partitions <= 0 {
		return DefaultPartitions
	}
	return c.Partitions
}

func (c Config) eventsName() string {
	if c.Name == "" {
		return EventsStream
	}
	return c.Name
}

// EventsConfig is the events stream's configuration.
func (c Config) EventsConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.eventsName(),
		Description: "Sluice ingested requests, one message per accepted request",
		// One token after the prefix: the transform (partition.go) takes
		// exactly that form, so no message is stored that no consumer's
		// filter matches.
		Subjects:         []string{eventsSubjectPrefix + "*"},
		SubjectTransform: transform(c.PartitionCount()),
		Storage:          jetstream.FileStorage,
		Retention:        jetstream.WorkQueuePolicy,
		Discard:          jetstream.DiscardNew,
		MaxBytes:         maxBytes(c.MaxBytes),
		Duplicates:       c.duplicateWindow(),
		Replicas:         replicas(c.Replicas),
	}
}

// DLQConfig is the dead-letter stream's configuration.
func (c Config) DLQConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        DLQStream,
		Description: "Sluice messages that could not be stored, with Sluice-Error",
		Subjects:    []string{dlqSubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    maxBytes(c.DLQMaxBytes),
		MaxAge:      max(c.DLQMaxAge, 0),
		Replicas:    replicas(c.Replicas),
	}
}

func (c Config) duplicateWindow() time.Duration {
	if c.DuplicateWindow <= 0 {
		return DefaultDuplicateWindow
	}
	return c.DuplicateWindow
}

func maxBytes(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

func replicas(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// EnsureStreams creates or updates the events and dead-letter streams. It is
// safe to call from several processes at once.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	for _, sc := range []jetstream.StreamConfig{cfg.EventsConfig(), cfg.DLQConfig()} {
		if err := EnsureStream(ctx, js, sc); err != nil {
			return err
		}
	}
	return nil
}

// EnsureStream creates or updates one stream; several processes may call it
// at once. A stream that already has this configuration is left alone: an
// update always rewrites the store's configuration, racing consumers being
// created at that moment, while creating an identical stream is a no-op.
func EnsureStream(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) error {
	var err error
	for range 3 {
		if _, err = js.CreateStream(ctx, sc); err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			break
		}
		// It exists with another configuration (or another process created
		// it a moment ago): update it; deleted meanwhile, create it again.
		if _, err = js.UpdateStream(ctx, sc); err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			break
		}
	}
	return fmt.Errorf("ensure stream %s: %w", sc.Name, err)
}

// ConsumerConfig tunes the durable pull consumer.
type ConsumerConfig struct {
	// Name of the durable consumer; empty means Consumer.
	Name string
	// AckWait is how long a delivered message may stay unacknowledged before
	// it is redelivered.
	AckWait time.Duration
	// MaxAckPending bounds messages delivered but not yet acknowledged.
	MaxAckPending int
	// PinnedTTL is how long the server keeps a partition pinned to a
	// worker that sends no pull request: how soon a dead worker's
	// partition goes to its next owner. Zero means AckWait.
	PinnedTTL time.Duration
	// filter (or filters, when several) and pinned are set by
	// EnsureConsumers.
	filter  string
	filters []string
	pinned  bool
}

// EnsureConsumer creates or updates the durable pull consumer shared by all
// workers of the events stream. The server redelivers a message for as long
// as it is not acknowledged (MaxDeliver -1, also applied to a consumer
// created with a limit): the worker counts deliveries itself and moves a
// message to the dead-letter stream only once that stream has accepted it,
// so no message is left in the stream delivered to no one.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, streamName string, cc ConsumerConfig) (jetstream.Consumer, error) {
	if streamName == "" {
		streamName = EventsStream
	}
	name := cc.Name
	if name == "" {
		name = Consumer
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "Sluice workers: batch to S3, ack after upload",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cc.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: cc.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: cc.filter,
	}
	if len(cc.filters) > 1 {
		cfg.FilterSubject, cfg.FilterSubjects = "", cc.filters
	} else if len(cc.filters) == 1 {
		cfg.FilterSubject = cc.filters[0]
	}
	if cc.pinned {
		cfg.Description = "Sluice workers, one partition: batch to S3, ack after upload; one pinned puller at a time"
		cfg.PriorityPolicy = jetstream.PriorityPolicyPinned
		cfg.PriorityGroups = []string{PriorityGroup}
		cfg.PinnedTTL = cc.PinnedTTL
		if cfg.PinnedTTL <= 0 {
			cfg.PinnedTTL = cc.AckWait
		}
	}
	var (
		c   jetstream.Consumer
		err error
	)
	for range 3 {
		if c, err = js.CreateOrUpdateConsumer(ctx, streamName, cfg); err == nil {
			return c, nil
		}
		if !errors.Is(err, jetstream.ErrConsumerExists) {
			break
		}
	}
	return nil, fmt.Errorf("ensure consumer %s on %s: %w", name, streamName, err)
}
