//go:build unix

package stream_test

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"syscall"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// BenchmarkDuplicateIDs publishes b.N requests of 100 bytes to the events
// stream (the default duplicate window, no consumer) with or without a
// Nats-Msg-Id of the gateway's form, and reports the heap the embedded
// nats-server holds afterwards per message: the difference between the two
// is what one id kept for the duplicate window costs every server. Run each
// case in its own process, with enough messages to dwarf the base:
//
//	go test -run '^$' -bench 'DuplicateIDs/ids=false' -benchtime 200000x ./stream/
//	go test -run '^$' -bench 'DuplicateIDs/ids=true' -benchtime 200000x ./stream/
func BenchmarkDuplicateIDs(b *testing.B) {
	for _, ids := range []bool{false, true} {
		b.Run(fmt.Sprintf("ids=%v", ids), func(b *testing.B) {
			n := devtest.NATS(b)
			_, js := devtest.JetStream(b, n)
			if err := stream.EnsureStreams(b.Context(), js, stream.Config{}); err != nil {
				b.Fatal(err)
			}
			pub, err := jetstream.New(must(nats.Connect(n.URL())), jetstream.WithPublishAsyncMaxPending(256))
			if err != nil {
				b.Fatal(err)
			}
			body := make([]byte, 100)
			before := heapBytes()
			for b.Loop() {
				m := nats.NewMsg(stream.EventsSubject("acme"))
				m.Data = body
				if ids {
					m.Header.Set(stream.HeaderMsgID, envelope.NewBatchID())
				}
				if _, err := pub.PublishMsgAsync(m); err != nil {
					b.Fatal(err)
				}
			}
			<-pub.PublishAsyncComplete()
			pub.Conn().Close()
			b.ReportMetric(float64(heapBytes()-before)/float64(b.N), "heap-B/msg")
			b.ReportMetric(float64(rss())/(1<<20), "rss-MiB")
		})
	}
}

func must(nc *nats.Conn, err error) *nats.Conn {
	if err != nil {
		panic(err)
	}
	return nc
}

// heapBytes is the live heap after a collection.
func heapBytes() int64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// rss is the process's peak resident set (getrusage).
func rss() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss << 10
}
