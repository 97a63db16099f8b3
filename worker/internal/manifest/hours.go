package manifest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/stream"
)

// The open hours: one key per tenant-hour and consumer that delivered a
// message of it, <tenant>.<YYYYMMDDHH>.<consumer>, in stream.HoursBucket,
// put before the message goes into an object and removed once the hour is closed.
// Whoever reads the consumer next, after a handover or a kill, finds the
// hours its former reader left open. Tenants are [a-z0-9_-] and consumer
// names have no dots, so keys need no escaping.

// hoursTTL is how long, besides the grace, a key outlives its last write:
// an hour still open that long after it was seen (its consumer deleted,
// say) is given up. The tracker forgets closed hours after as long.
const hoursTTL = 48 * time.Hour

// hoursMarkerTTL is how long the marker of a removed key stays.
const hoursMarkerTTL = time.Minute

// Hours is the open hours' bucket.
type Hours struct {
	kv jetstream.KeyValue
}

// OpenHours creates or updates the bucket, with grace being
// SLUICE_MANIFEST_GRACE and replicas the streams' replica count.
func OpenHours(ctx context.Context, js jetstream.JetStream, grace time.Duration, replicas int) (*Hours, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      stream.HoursBucket,
		Description: "Sluice tenant-hours without a manifest yet, one key per tenant-hour and consumer that delivered it",
		History:     1,
		TTL:         hoursTTL + grace,
		// Markers (and so per-message TTLs) let a removed key's marker go
		// after hoursMarkerTTL instead of staying for the bucket's TTL.
		LimitMarkerTTL: hoursMarkerTTL,
		Storage:        jetstream.FileStorage,
		Replicas:       max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("hours bucket %s: %w", stream.HoursBucket, err)
	}
	return &Hours{kv: kv}, nil
}

// hoursKey is the key of tenant's hour seen from the consumer source.
func hoursKey(k hourKey, source string) string {
	return k.tenant + "." + k.hour.UTC().Format("2006010215") + "." + source
}

// parseHoursKey reads a key written by hoursKey.
func parseHoursKey(key string) (k hourKey, source string, ok bool) {
	tenant, rest, ok1 := strings.Cut(key, ".")
	hour, source, ok2 := strings.Cut(rest, ".")
	t, err := time.Parse("2006010215", hour)
	if !ok1 || !ok2 || err != nil || tenant == "" || source == "" {
		return hourKey{}, "", false
	}
	return hourKey{tenant, t.UTC()}, source, true
}

// record puts the key of an hour seen from source; the value is the stream
// sequence of the message it was seen in, for operators.
func (h *Hours) record(ctx context.Context, k hourKey, source string, seq uint64) error {
	key := hoursKey(k, source)
	if _, err := h.kv.Put(ctx, key, strconv.AppendUint(nil, seq, 10)); err != nil {
		return fmt.Errorf("record open hour %s: %w", key, err)
	}
	return nil
}

// list returns the open hours recorded for the consumers sources, with
// the revision of each source's key.
func (h *Hours) list(ctx context.Context, sources []string) (map[hourKey]map[string]uint64, error) {
	out := map[hourKey]map[string]uint64{}
	if len(sources) == 0 {
		return out, nil
	}
	filters := make([]string, len(sources))
	for i, s := range sources {
		filters[i] = "*.*." + s
	}
	w, err := h.kv.WatchFiltered(ctx, filters, jetstream.IgnoreDeletes(), jetstream.MetaOnly())
	if err != nil {
		return nil, fmt.Errorf("list open hours: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("list open hours: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("list open hours: watcher stopped")
			}
			if e == nil { // every key listed
				return out, nil
			}
			k, source, ok := parseHoursKey(e.Key())
			if !ok {
				continue
			}
			if out[k] == nil {
				out[k] = map[string]uint64{}
			}
			out[k][source] = e.Revision()
		}
	}
}

// remove deletes the key of a closed hour's source, unless it was put
// again since revision rev (a message of the hour seen meanwhile).
func (h *Hours) remove(ctx context.Context, k hourKey, source string, rev uint64) error {
	key := hoursKey(k, source)
	err := h.kv.Purge(ctx, key, jetstream.LastRevision(rev), jetstream.PurgeTTL(hoursMarkerTTL))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return nil // recorded again: the hour is checked again
	}
	if err != nil {
		return fmt.Errorf("remove open hour %s: %w", key, err)
	}
	return nil
}
