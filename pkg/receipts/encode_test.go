package receipts

import (
	"encoding/json"
	"testing"
	"time"
)

// TestCreationEncodesAsJSON checks that a created record's bytes are those
// json.Marshal gives it, for a landing and a dead letter, with strings that
// need escaping and some that do not.
func TestCreationEncodesAsJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 14, 5, 6, 789, time.FixedZone("x", 3600))
	outcomes := []Outcome{
		{ID: ObjectOutcome("k"), Key: "raw/tenant=acme/dt=2026-12-01/hour=14/1-3.ndjson.gz", At: at},
		{ID: ObjectOutcome("k2"), Key: `odd "key" <&> é` + "\n", At: at},
		{ID: DeadLetterOutcome("s1", 4), Error: "undecodable body: \"x\" <b>", At: at},
		{ID: DeadLetterOutcome("s1", 5), At: at},
	}
	for _, o := range outcomes {
		c, err := newCreation(o)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"n29a9fnj049josr94jq47sb4do", "b-1_x", `q"<id>`} {
			for _, events := range []int{0, 1, 500000} {
				for _, requests := range [][]int{nil, {events, 0}, {1, 2, 3}} {
					o.Events = events
					b := Batch{BatchID: id, Events: events, Requests: requests}
					want, err := json.Marshal(newRecord(b, o))
					if err != nil {
						t.Fatal(err)
					}
					if got := c.encode(b); string(got) != string(want) {
						t.Errorf("encode(%+v) of %+v:\n got %s\nwant %s", b, o, got, want)
					}
				}
			}
		}
	}
}

// BenchmarkCreation encodes the records of one landing for batches whose
// ids need no escaping, and of a dead letter whose error does.
func BenchmarkCreation(b *testing.B) {
	at := time.Date(2026, 12, 1, 14, 5, 6, 789, time.UTC)
	for name, o := range map[string]Outcome{
		"landing":     {ID: ObjectOutcome("k"), Key: "raw/tenant=acme/dt=2026-12-01/hour=14/1-3.ndjson.gz", At: at},
		"dead-letter": {ID: DeadLetterOutcome("s1", 4), Error: "undecodable body: \"x\" <b> é\n", At: at},
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c, err := newCreation(o)
				if err != nil {
					b.Fatal(err)
				}
				for range 100 {
					_ = c.encode(Batch{BatchID: "n29a9fnj049josr94jq47sb4do", Events: 20})
				}
			}
		})
	}
}
