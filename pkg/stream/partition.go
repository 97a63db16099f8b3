package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Partitions. A subject transform stores sluice.events.<tenant> as
// sluice.events.<p>.<tenant>, p = {{partition(N,1)}} a stable hash of the
// tenant. Each partition has its durable consumer <consumer>-pNN, filtered
// on sluice.events.<p>.*, with a pinned-client priority group so one puller
// at a time reads it. Messages without a partition token are read by the
// unpartitioned consumer (unpartitioned.go); no filters overlap.

// DefaultPartitions is SLUICE_PARTITIONS' default.
const DefaultPartitions = 16

// PriorityGroup is the pinned-client priority group of every worker
// consumer; a fetch names it.
const PriorityGroup = "sluice"

// MembersBucket is the JetStream KV bucket where each running worker keeps
// its membership key alive. A key's value is "writable <time>" or
// "unwritable <time>" (the time of its last heartbeat): a worker that
// cannot write to S3 takes no partition while any member can.
const MembersBucket = "SLUICE_MEMBERS"

// HoursBucket is the JetStream KV bucket of the tenant-hours whose
// manifest is not written yet: one key per tenant-hour and consumer that
// delivered a message of it, <tenant>.<YYYYMMDDHH>.<consumer>, so that
// whoever reads the consumer next closes them (worker/internal/manifest).
const HoursBucket = "SLUICE_HOURS"

// HandBacksBucket is the JetStream KV bucket where a worker that cannot
// write to S3 records the messages it hands back, one key per message and
// delivery (<stream incarnation>.<stream sequence>.<delivery>), so that
// those deliveries do not count towards SLUICE_MAX_DELIVER.
const HandBacksBucket = "SLUICE_HANDBACKS"

// PartitionConsumer is the name of partition p's durable consumer:
// base-pNN (base is Consumer unless SLUICE_CONSUMER says otherwise).
func PartitionConsumer(base string, p int) string {
	if base == "" {
		base = Consumer
	}
	return fmt.Sprintf("%s-p%02d", base, p)
}

// PartitionSubject is the filter of partition p's consumer.
func PartitionSubject(p int) string { return eventsSubjectPrefix + strconv.Itoa(p) + ".*" }

// transform is the stream's subject transform for n partitions.
func transform(n int) *jetstream.SubjectTransformConfig {
	return &jetstream.SubjectTransformConfig{
		Source:      eventsSubjectPrefix + "*",
		Destination: eventsSubjectPrefix + "{{partition(" + strconv.Itoa(n) + ",1)}}.{{wildcard(1)}}",
	}
}

// TenantOf is the tenant of an events subject: sluice.events.<tenant> (as
// published, and as stored without a partition) or sluice.events.<p>.<tenant>
// (as stored in partition p); ok is false for any other subject. The
// tenant is not validated.
func TenantOf(subject string) (tenant string, ok bool) {
	rest, ok := strings.CutPrefix(subject, eventsSubjectPrefix)
	if !ok || rest == "" {
		return "", false
	}
	p, tenant, partitioned := strings.Cut(rest, ".")
	if !partitioned {
		return rest, true
	}
	if _, err := strconv.ParseUint(p, 10, 16); err != nil || tenant == "" || strings.Contains(tenant, ".") {
		return "", false
	}
	return tenant, true
}

// PartitionOf is the partition token of a stored events subject; ok is
// false for a subject stored without one.
func PartitionOf(subject string) (p int, ok bool) {
	rest, _ := strings.CutPrefix(subject, eventsSubjectPrefix)
	tok, _, partitioned := strings.Cut(rest, ".")
	if !partitioned {
		return 0, false
	}
	n, err := strconv.ParseUint(tok, 10, 16)
	return int(n), err == nil
}

// EnsureConsumers creates or updates one consumer per partition and returns
// them, partition 0 to n-1, then any left beyond n by a larger partition
// count, then the unpartitioned consumer while messages are left for it.
// That one is ensured first: an unfiltered consumer of its name must narrow
// its filter before a partition consumer can exist beside it.
func EnsureConsumers(ctx context.Context, js jetstream.JetStream, streamName string, n int, cc ConsumerConfig) ([]jetstream.Consumer, error) {
	legacy, err := ensureUnpartitioned(ctx, js, streamName, cc)
	if err != nil {
		return nil, err
	}
	var out []jetstream.Consumer
	base := cc.Name
	cc.pinned = true
	for p := range n {
		pc := cc
		pc.Name, pc.filter = PartitionConsumer(base, p), PartitionSubject(p)
		c, err := EnsureConsumer(ctx, js, streamName, pc)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	// Partition consumers beyond n are left by a larger SLUICE_PARTITIONS:
	// what they hold is still read.
	st, err := js.Stream(ctx, streamNameOr(streamName))
	if err != nil {
		return nil, fmt.Errorf("list consumers of %s: %w", streamNameOr(streamName), err)
	}
	names := st.ConsumerNames(ctx)
	var extra []string
	for name := range names.Name() {
		if p, ok := partitionOfName(base, name); ok && p >= n {
			extra = append(extra, name)
		}
	}
	if err := names.Err(); err != nil {
		return nil, fmt.Errorf("list consumers of %s: %w", streamNameOr(streamName), err)
	}
	slices.Sort(extra)
	for _, name := range extra {
		c, err := st.Consumer(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("consumer %s: %w", name, err)
		}
		out = append(out, c)
	}
	if legacy != nil {
		out = append(out, legacy)
	}
	return out, nil
}

func streamNameOr(name string) string {
	if name == "" {
		return EventsStream
	}
	return name
}

// partitionOfName is p for a consumer named base-pNN.
func partitionOfName(base, name string) (int, bool) {
	if base == "" {
		base = Consumer
	}
	tok, ok := strings.CutPrefix(name, base+"-p")
	if !ok {
		return 0, false
	}
	p, err := strconv.ParseUint(tok, 10, 16)
	return int(p), err == nil
}

// NextStored is the first message of tenant at or after sequence seq in
// the events stream st, whether stored in its partition or without a
// partition token; every tenant's when tenant is empty. It returns
// jetstream.ErrMsgNotFound when there is none.
func NextStored(ctx context.Context, st jetstream.Stream, seq uint64, tenant string) (*jetstream.RawStreamMsg, error) {
	subjects := []string{eventsSubjectPrefix + ">"}
	if tenant != "" {
		subjects = []string{EventsSubject(tenant), eventsSubjectPrefix + "*." + tenant}
	}
	var first *jetstream.RawStreamMsg
	for _, subject := range subjects {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if first == nil || m.Sequence < first.Sequence {
			first = m
		}
	}
	if first == nil {
		return nil, jetstream.ErrMsgNotFound
	}
	return first, nil
}
