package pipeline

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/objkey"
	"github.com/sluice-ingest/sluice/worker/internal/object"
	"github.com/sluice-ingest/sluice/worker/internal/sink"
)

// What the pipeline needs of the world outside it. A worker passes a
// *sink.Sink and a jetstream.JetStream; a test can pass anything that
// keeps these contracts.

// Store encodes cut objects, writes them and finds those written
// before (sink.Sink).
type Store interface {
	// Encode turns a cut object into the bytes to write.
	Encode(bt *object.Object) (sink.Object, error)
	// Put writes obj once and returns its key (sink.ErrConflict when the
	// key holds another object).
	Put(ctx context.Context, obj sink.Object) (string, error)
	// CheckWritable tells whether this worker can write at all
	// (writable.go).
	CheckWritable(ctx context.Context) error
	storedObjects
}

// storedObjects is what regathering (regather.go) asks the store.
type storedObjects interface {
	Stored(ctx context.Context, tenant string, hour time.Time) ([]objkey.Key, error)
	StoredObject(ctx context.Context, key string) (sink.Stored, error)
}

// Streams publishes dead letters and reads the events stream's info (its
// incarnation).
type Streams interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
	Stream(ctx context.Context, name string) (jetstream.Stream, error)
	// Conn is the connection, whose reconnections make the incarnation
	// be read again.
	Conn() *nats.Conn
}
