package partition

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/stream"
	"github.com/sluice-ingest/sluice/worker/internal/pipeline"
)

// Reader is what a Member drives: the pipeline's sources.
type Reader interface {
	Acquire(name string, cons pipeline.Fetcher, opts ...jetstream.FetchOpt)
	Release(name string) <-chan struct{}
}

// Config wires a Member.
type Config struct {
	JS     jetstream.JetStream
	Stream string
	// Slots are the consumers shared out, slot i being Slots[i]: the
	// partition consumers, then the unpartitioned one while it exists.
	Slots []jetstream.Consumer
	// ID names this worker in the bucket; empty means the host name and
	// a random suffix.
	ID string
	// TTL is how long a membership key outlives its last heartbeat: how
	// soon the others take a dead worker's partitions. Heartbeats go every
	// TTL/3.
	TTL time.Duration
	// Replicas of the members bucket: the events stream's, so that
	// membership outlives a NATS node as the stream does.
	Replicas int
	// Writable is whether this worker can write; a member that cannot
	// takes no partition while another can (writable.go). Nil means it
	// always can.
	Writable Writability
	// Metrics, when set, counts partitions owned and withdrawals.
	Metrics *Metrics
	Log     *slog.Logger
}

// Member is this worker's membership.
type Member struct {
	cfg Config
	kv  jetstream.KeyValue
	rd  Reader

	putMu sync.Mutex // one put of the key at a time, its value read under it

	mu sync.Mutex
	// members holds every key in the bucket, true for those that can
	// write.
	members map[string]bool
	owned   map[int]bool // slots being read
	// releasing is the slots being handed over, each with the channel
	// its handover closes; a slot wanted again meanwhile is taken back.
	releasing map[int]<-chan struct{}
	wake      chan struct{}
	// withdrawn is whether this worker left the assignment because it
	// cannot write; said is whether that was logged; unassigned whether
	// it keeps its partitions because no member can write.
	withdrawn, said, unassigned bool
}

// Join creates (or updates) the members bucket and puts this worker's key
// in it. rd reads nothing until Run assigns it partitions.
func Join(ctx context.Context, cfg Config, rd Reader) (*Member, error) {
	if cfg.ID == "" {
		cfg.ID = newID()
	}
	kv, err := cfg.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      stream.MembersBucket,
		Description: "Sluice workers alive, one key each, kept by heartbeats, value writable or unwritable; partitions are shared out over the sorted keys of those that can write",
		TTL:         cfg.TTL,
		// Markers make the watchers see a key removed by the TTL.
		LimitMarkerTTL: cfg.TTL,
		History:        1,
		Replicas:       max(cfg.Replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("members bucket %s: %w", stream.MembersBucket, err)
	}
	m := &Member{cfg: cfg, kv: kv, rd: rd, members: map[string]bool{}, owned: map[int]bool{},
		releasing: map[int]<-chan struct{}{}, wake: make(chan struct{}, 1)}
	if err := m.heartbeat(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// ID is this worker's key in the members bucket.
func (m *Member) ID() string { return m.cfg.ID }

// heartbeat puts this worker's key, with whether it can write now.
func (m *Member) heartbeat(ctx context.Context) error {
	m.putMu.Lock()
	defer m.putMu.Unlock()
	if _, err := m.kv.Put(ctx, m.cfg.ID, memberValue(m.canWrite(), time.Now())); err != nil {
		return fmt.Errorf("heartbeat %s: %w", m.cfg.ID, err)
	}
	return nil
}

// canWrite is whether this worker can write now.
func (m *Member) canWrite() bool { return m.cfg.Writable == nil || m.cfg.Writable.Writable() == nil }

// Run keeps the membership alive and the partitions assigned until ctx
// ends: it heartbeats every TTL/3 and whenever the worker's writability
// changes, watches the bucket (a member joining, leaving, expiring or
// changing its writability rebalances at once) and lists it again every
// TTL.
func (m *Member) Run(ctx context.Context) error {
	var changed <-chan struct{}
	if m.cfg.Writable != nil {
		changed = m.cfg.Writable.WritableChanged()
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { m.beat(ctx) })
	wg.Go(func() { m.watch(ctx) })
	t := time.NewTicker(m.cfg.TTL)
	defer t.Stop()
	for {
		m.rebalance(ctx, &wg)
		select {
		case <-ctx.Done():
			return nil
		case <-m.wake:
		case <-changed:
			// rebalance reads the worker's own writability; the others
			// learn it from this put.
			hctx, cancel := context.WithTimeout(ctx, m.cfg.TTL/3)
			if err := m.heartbeat(hctx); err != nil && ctx.Err() == nil {
				m.cfg.Log.Warn("membership: telling the others this worker's writability failed; the next heartbeat does", "err", err)
			}
			cancel()
		case <-t.C:
			m.list(ctx)
		}
	}
}

func (m *Member) beat(ctx context.Context) {
	t := time.NewTicker(m.cfg.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, m.cfg.TTL/3)
		if err := m.heartbeat(hctx); err != nil && ctx.Err() == nil {
			m.cfg.Log.Warn("membership heartbeat failed", "err", err)
		}
		cancel()
		m.mu.Lock()
		_, listed := m.members[m.cfg.ID]
		m.members[m.cfg.ID] = m.canWrite()
		m.mu.Unlock()
		joined := !listed
		if joined { // back after its key expired
			m.poke()
		}
	}
}

// watch follows the bucket; it restarts after an error.
func (m *Member) watch(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := m.kv.WatchAll(ctx)
		if err != nil {
			m.cfg.Log.Warn("watch members", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for e := range w.Updates() {
			if e == nil {
				continue // the initial values are in
			}
			m.mu.Lock()
			if e.Operation() == jetstream.KeyValuePut {
				m.members[e.Key()] = canWrite(e.Value())
			} else {
				delete(m.members, e.Key())
			}
			m.mu.Unlock()
			m.poke()
		}
		_ = w.Stop()
	}
}

// list reads the bucket's keys and values again, in case the watch
// missed a change.
func (m *Member) list(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, m.cfg.TTL)
	defer cancel()
	members, err := m.read(lctx)
	if err != nil {
		if ctx.Err() == nil {
			m.cfg.Log.Warn("list members", "err", err)
		}
		return
	}
	m.mu.Lock()
	m.members = members
	m.mu.Unlock()
}

// read is every key in the bucket, true for those that can write.
func (m *Member) read(ctx context.Context) (map[string]bool, error) {
	w, err := m.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	members := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("watch closed")
			}
			if e == nil { // every value is in
				return members, nil
			}
			members[e.Key()] = canWrite(e.Value())
		}
	}
}

func (m *Member) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Owned is the consumers this worker reads now, sorted.
func (m *Member) Owned() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for s := range m.owned {
		names = append(names, m.cfg.Slots[s].CachedInfo().Name)
	}
	slices.Sort(names)
	return names
}

// Leave deletes this worker's membership key, so the others take its
// partitions at once, and unpins every consumer it read or was handing
// over. Call it after the pipeline has stopped: its messages are then
// stored and acked, or handed back.
func (m *Member) Leave(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := m.kv.Delete(lctx, m.cfg.ID); err != nil {
		m.cfg.Log.Warn("leave members; the others take this worker's partitions when its key expires", "err", err)
	}
	m.mu.Lock()
	var names []string
	for s := range m.owned {
		names = append(names, m.cfg.Slots[s].CachedInfo().Name)
	}
	for s := range m.releasing {
		names = append(names, m.cfg.Slots[s].CachedInfo().Name)
	}
	m.mu.Unlock()
	for _, n := range names {
		m.unpin(lctx, n)
	}
}

// newID is the host name (in the characters a KV key allows) and 8 random
// hex digits: a restarted worker is a new member.
func newID() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, host)
	var b [4]byte
	_, _ = rand.Read(b[:])
	return strings.Trim(host+"-"+hex.EncodeToString(b[:]), "-")
}
