package sink

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/worker/internal/object"
)

// logObject is an object of msgs messages of perMsg events each, from one
// tenant, shaped like application logs: nested objects, numbers, repeated
// services and paths, unique trace ids, a few strings that need escaping.
// The same arguments give the same object.
func logObject(msgs, perMsg int) *object.Object {
	r := rand.New(rand.NewPCG(1, uint64(msgs*perMsg)))
	services := []string{"checkout", "cart", "search", "auth", "payments"}
	paths := []string{"/api/v1/orders", "/api/v1/cart/items", "/api/v1/search", "/login", "/api/v1/pay"}
	levels := []string{"info", "info", "info", "debug", "warn", "error"}
	start := time.Date(2026, 12, 1, 19, 0, 0, 123456789, time.UTC)
	b := object.NewOpen(object.Limits{MaxBytes: 1 << 40, MaxEvents: 1 << 30, MaxAge: time.Hour})
	for m := range msgs {
		at := start.Add(time.Duration(m) * 1234567 * time.Nanosecond)
		var body []byte
		for i := range perMsg {
			svc := services[r.IntN(len(services))]
			body = fmt.Appendf(body, `{"ts":%q,"level":%q,"service":%q,"host":"ip-10-0-%d-%d",`+
				`"msg":"request \"%s\" done\tok","http":{"method":"GET","path":"%s/%d","status":%d,"duration_ms":%.3f},`+
				`"user_id":"u_%d","trace_id":"%016x%016x","tags":["%s","é%d"]}`+"\n",
				at.Add(time.Duration(i)*time.Microsecond).Format(time.RFC3339Nano), levels[r.IntN(len(levels))], svc,
				r.IntN(8), r.IntN(250), svc, paths[r.IntN(len(paths))], r.IntN(100000), []int{200, 200, 200, 201, 404, 500}[r.IntN(6)],
				r.Float64()*250, r.IntN(5000), r.Uint64(), r.Uint64(), svc, i)
		}
		meta := envelope.Meta{Tenant: "acme", BatchID: envelope.BatchIDFor("acme", fmt.Sprint(m)), ReceivedAt: at, EventCount: perMsg}
		b.Add(object.Item{Meta: meta, Seq: uint64(m + 1), Body: body, Stream: testStream}, start)
	}
	return b.All(object.ReasonShutdown)[0]
}
