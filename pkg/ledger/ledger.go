package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/counters"

	"github.com/sluice-ingest/sluice/pkg/stream"
)

// Stream is the counter stream.
const Stream = "SLUICE_COUNTERS"

// DuplicateWindow is how long the stream remembers an increment's
// Nats-Msg-Id: an outcome counted again within it (a worker that stored an
// object and died before acking it, whose batch is formed and stored again)
// is counted once. It must be far longer than SLUICE_ACK_WAIT.
const DuplicateWindow = time.Hour

// MaxAge is how long a tenant-hour's counters are kept after their last
// increment: long enough to reconcile a month of hours, short enough that
// the stream (three subjects per tenant-hour) does not grow forever.
const MaxAge = 35 * 24 * time.Hour

// Kind is what a counter counts.
type Kind string

// The counted kinds.
const (
	Accepted Kind = "accepted" // by the gateways, at the PubAck
	Landed   Kind = "landed"   // by the workers, once an object holding them is stored
	Dead     Kind = "dead"     // by the workers, once SLUICE_DLQ holds them
)

const subjectPrefix = "sluice.count."

// HourFormat is how an hour is written in a subject: UTC, YYYYMMDDHH.
const HourFormat = "2006010215"

// Subject is the counter of kind for tenant's events received in hour:
// sluice.count.<kind>.<tenant>.<YYYYMMDDHH>.
func Subject(kind Kind, tenant string, hour time.Time) string {
	return subjectPrefix + string(kind) + "." + tenant + "." + hour.UTC().Format(HourFormat)
}

// Config is the counter stream's configuration. Each subject keeps only its
// last message, which carries the total.
func Config(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              Stream,
		Description:       "Sluice counters per tenant and hour: events accepted, landed, dead-lettered",
		Subjects:          []string{subjectPrefix + ">"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: 1,
		MaxAge:            MaxAge,
		Duplicates:        DuplicateWindow,
		AllowMsgCounter:   true,
		AllowDirect:       true,
		Replicas:          max(replicas, 1),
	}
}

// Ensure creates or updates the counter stream.
func Ensure(ctx context.Context, js jetstream.JetStream, replicas int) error {
	return stream.EnsureStream(ctx, js, Config(replicas))
}

// Add increments the counter of kind for tenant and hour by n. A non-empty
// id is the increment's Nats-Msg-Id: the same id within DuplicateWindow
// counts once.
func Add(ctx context.Context, js jetstream.JetStream, kind Kind, tenant string, hour time.Time, n int64, id string) error {
	m := nats.NewMsg(Subject(kind, tenant, hour))
	m.Header.Set(counters.CounterIncrementHeader, strconv.FormatInt(n, 10))
	if id != "" {
		m.Header.Set(jetstream.MsgIDHeader, id)
	}
	if _, err := js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("count %d %s events of %s at %s: %w", n, kind, tenant, hour.UTC().Format(HourFormat), err)
	}
	return nil
}

// Counts are one tenant-hour's counters.
type Counts struct {
	Hour                   time.Time
	Accepted, Landed, Dead int64
}

// Read returns the counts of tenant for every hour from from to to (both
// truncated to the hour, to included), zero where nothing was counted.
func Read(ctx context.Context, js jetstream.JetStream, tenant string, from, to time.Time) ([]Counts, error) {
	st, err := js.Stream(ctx, Stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", Stream, err)
	}
	c, err := counters.NewCounterFromStream(js, st)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", Stream, err)
	}
	var out []Counts
	for h := from.UTC().Truncate(time.Hour); !h.After(to); h = h.Add(time.Hour) {
		cs := Counts{Hour: h}
		for kind, dst := range map[Kind]*int64{Accepted: &cs.Accepted, Landed: &cs.Landed, Dead: &cs.Dead} {
			v, err := c.Load(ctx, Subject(kind, tenant, h))
			switch {
			case errors.Is(err, counters.ErrNoCounterForSubject):
				continue
			case err != nil:
				return nil, fmt.Errorf("read counter: %w", err)
			case !v.IsInt64():
				return nil, fmt.Errorf("counter %s: %s is out of range", Subject(kind, tenant, h), v)
			}
			*dst = v.Int64()
		}
		out = append(out, cs)
	}
	return out, nil
}
