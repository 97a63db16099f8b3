package admin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/stream"
)

// Status is what the streams and the consumers of the events stream say
// about the cluster at one moment.
type Status struct {
	Server    Server     `json:"server"`
	Events    StreamInfo `json:"events"`
	Consumers []Consumer `json:"consumers"`
	DLQ       StreamInfo `json:"dlq"`
	// DLQTenants counts the dead letters of each tenant.
	DLQTenants map[string]uint64 `json:"dlq_tenants"`
}

// Server is the NATS server the command is connected to.
type Server struct {
	URL     string `json:"url"`
	Name    string `json:"name"`
	Version string `json:"version"`
}

// StreamInfo is the state and limits of one stream.
type StreamInfo struct {
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	Messages uint64    `json:"messages"`
	Bytes    uint64    `json:"bytes"`
	FirstSeq uint64    `json:"first_seq"`
	LastSeq  uint64    `json:"last_seq"`
	// FirstTime is when the oldest message held was stored, nil when the
	// stream is empty; LastTime when the last message (LastSeq) was, held
	// or not, nil when there never was one.
	FirstTime *time.Time `json:"first_time"`
	LastTime  *time.Time `json:"last_time"`
	Deleted   int        `json:"deleted"`
	Limits    Limits     `json:"limits"`
	// Leader and Replicas are set in a NATS cluster.
	Leader   string    `json:"leader,omitempty"`
	Replicas []Replica `json:"replicas,omitempty"`
}

// Limits are a stream's bounds; -1 (or 0 for MaxAge) means unlimited.
// Discard is new or old, Retention limits, interest or workqueue, Storage
// file or memory.
type Limits struct {
	MaxBytes   int64    `json:"max_bytes"`
	MaxMsgs    int64    `json:"max_msgs"`
	MaxAge     Duration `json:"max_age"`
	MaxMsgSize int32    `json:"max_msg_size"`
	Discard    string   `json:"discard"`
	Retention  string   `json:"retention"`
	Storage    string   `json:"storage"`
	Duplicates Duration `json:"duplicate_window"`
	Replicas   int      `json:"replicas"`
}

// Replica is a follower of a stream in a NATS cluster.
type Replica struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline"`
	Lag     uint64 `json:"lag"`
}

// Consumer is one consumer of the events stream.
type Consumer struct {
	Name string `json:"name"`
	// Workers marks the workers' durable consumers: each partition's,
	// <SLUICE_CONSUMER>-pNN, and the unpartitioned SLUICE_CONSUMER.
	Workers bool `json:"workers"`
	// Pending is messages not yet delivered; AckPending delivered and not
	// yet acknowledged; Redelivered delivered more than once and not yet
	// acknowledged.
	Pending     uint64 `json:"pending"`
	AckPending  int    `json:"ack_pending"`
	Redelivered int    `json:"redelivered"`
	// Waiting is the pull requests waiting at the server for messages:
	// each running worker keeps one open while it has room for more.
	Waiting int `json:"waiting_pulls"`
	// LastDelivered and LastAcked are when the server last delivered a
	// message and last moved the ack floor.
	LastDelivered *time.Time `json:"last_delivered"`
	LastAcked     *time.Time `json:"last_acked"`
	AckFloorSeq   uint64     `json:"ack_floor_seq"`
	MaxAckPending int        `json:"max_ack_pending"`
	// MaxDeliver is the server's bound, -1 when the workers count
	// deliveries themselves.
	MaxDeliver int      `json:"max_deliver"`
	AckWait    Duration `json:"ack_wait"`
	Paused     bool     `json:"paused"`
}

// GetStatus reads the status of the events stream named events, its
// consumers (workers is the workers' base name, SLUICE_CONSUMER) and the
// dead-letter stream. Either stream missing is ErrStreamMissing. Missing
// workers' consumers are no error: Consumers then holds no entry with
// Workers set.
func GetStatus(ctx context.Context, js jetstream.JetStream, events, workers string) (Status, error) {
	var s Status
	nc := js.Conn()
	s.Server = Server{URL: nc.ConnectedUrlRedacted(), Name: nc.ConnectedServerName(), Version: nc.ConnectedServerVersion()}
	ev, err := openStream(ctx, js, events)
	if err != nil {
		return s, err
	}
	info, err := ev.Info(ctx)
	if err != nil {
		return s, fmt.Errorf("stream info %s: %w", events, err)
	}
	s.Events = streamInfo(info)
	s.Consumers = []Consumer{}
	cl := ev.ListConsumers(ctx)
	for ci := range cl.Info() {
		s.Consumers = append(s.Consumers, consumer(ci, workers))
	}
	if err := cl.Err(); err != nil {
		return s, fmt.Errorf("list consumers of %s: %w", events, err)
	}
	dlq, err := openStream(ctx, js, stream.DLQStream)
	if err != nil {
		return s, err
	}
	info, err = dlq.Info(ctx, jetstream.WithSubjectFilter(stream.DLQSubject(">")))
	if err != nil {
		return s, fmt.Errorf("stream info %s: %w", stream.DLQStream, err)
	}
	s.DLQ = streamInfo(info)
	s.DLQTenants = map[string]uint64{}
	for subject, n := range info.State.Subjects {
		s.DLQTenants[strings.TrimPrefix(subject, stream.DLQSubject(""))] = n
	}
	return s, nil
}

func streamInfo(info *jetstream.StreamInfo) StreamInfo {
	c, st := info.Config, info.State
	out := StreamInfo{
		Name: c.Name, Created: info.Created.UTC(),
		Messages: st.Msgs, Bytes: st.Bytes, FirstSeq: st.FirstSeq, LastSeq: st.LastSeq, Deleted: st.NumDeleted,
		Limits: Limits{
			MaxBytes: c.MaxBytes, MaxMsgs: c.MaxMsgs, MaxAge: Duration(c.MaxAge), MaxMsgSize: c.MaxMsgSize,
			Discard:   strings.ToLower(strings.TrimPrefix(c.Discard.String(), "Discard")),
			Retention: strings.ToLower(c.Retention.String()), Storage: strings.ToLower(c.Storage.String()),
			Duplicates: Duration(c.Duplicates), Replicas: c.Replicas,
		},
	}
	if st.Msgs > 0 {
		first := st.FirstTime.UTC()
		out.FirstTime = &first
	}
	if !st.LastTime.IsZero() { // kept when the stream is empty again
		last := st.LastTime.UTC()
		out.LastTime = &last
	}
	if info.Cluster != nil {
		out.Leader = info.Cluster.Leader
		for _, p := range info.Cluster.Replicas {
			out.Replicas = append(out.Replicas, Replica{Name: p.Name, Current: p.Current, Offline: p.Offline, Lag: p.Lag})
		}
	}
	return out
}

func consumer(ci *jetstream.ConsumerInfo, workers string) Consumer {
	return Consumer{
		Name: ci.Name, Workers: isWorkers(ci.Name, workers),
		Pending: ci.NumPending, AckPending: ci.NumAckPending, Redelivered: ci.NumRedelivered, Waiting: ci.NumWaiting,
		LastDelivered: utc(ci.Delivered.Last), LastAcked: utc(ci.AckFloor.Last), AckFloorSeq: ci.AckFloor.Stream,
		MaxAckPending: ci.Config.MaxAckPending, MaxDeliver: ci.Config.MaxDeliver, AckWait: Duration(ci.Config.AckWait),
		Paused: ci.Paused,
	}
}

// isWorkers is whether name is one of the workers' consumers: base, or a
// partition's, base-pNN (stream.PartitionConsumer).
func isWorkers(name, base string) bool {
	p, ok := strings.CutPrefix(name, base+"-p")
	return name == base || ok && len(p) >= 2 && strings.Trim(p, "0123456789") == ""
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// Duration is a time.Duration written in JSON as its string ("2m0s").
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d as time.Duration's String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads what MarshalText wrote.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}
