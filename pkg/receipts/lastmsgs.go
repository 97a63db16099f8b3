package receipts

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// lastMessages returns the data of the last message of each subject of
// the stream that has one and is not a KV delete or purge marker, by
// subject, in one direct get ("multi_last", answered by one message per
// subject found and an end-of-batch status). Its subscription's buffer is
// sized to the answer: a synchronous subscription would allocate the
// connection's default (64k messages) for every read.
func lastMessages(ctx context.Context, js jetstream.JetStream, stream string, subjects []string) (map[string][]byte, error) {
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
	}{subjects})
	if err != nil {
		return nil, fmt.Errorf("encode batch get: %w", err)
	}
	nc := js.Conn()
	inbox := nc.NewRespInbox()
	ch := make(chan *nats.Msg, len(subjects)+2) // every answer, the EOB and a status
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, fmt.Errorf("subscribe to the batch get's answers: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishMsg(&nats.Msg{Subject: apiPrefix(js) + "DIRECT.GET." + stream, Reply: inbox, Data: req}); err != nil {
		return nil, fmt.Errorf("batch get: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, nc.Opts.Timeout)
		defer cancel()
	}
	last := make(map[string][]byte, len(subjects))
	for {
		var m *nats.Msg
		select {
		case m = <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("batch get: %w", ctx.Err())
		}
		if len(m.Data) == 0 {
			switch status := m.Header.Get("Status"); status {
			case "204", "404": // end of batch; no subject has a message
				return last, nil
			case "":
			default:
				return nil, fmt.Errorf("batch get: status %s %s", status, m.Header.Get("Description"))
			}
		}
		subj := m.Header.Get(jetstream.SubjectHeader)
		if subj == "" {
			return nil, fmt.Errorf("batch get: an answer without %s", jetstream.SubjectHeader)
		}
		if m.Header.Get(kvOperation) == "" {
			last[subj] = m.Data
		}
	}
}

// apiPrefix is the JetStream API prefix js uses.
func apiPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.APIPrefix != "":
		if o.APIPrefix[len(o.APIPrefix)-1] == '.' {
			return o.APIPrefix
		}
		return o.APIPrefix + "."
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	}
	return "$JS.API."
}
