package e2e

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluice-ingest/sluice/pkg/client"
)

// TestClientAgainstGateway sends through the SDK to the real gateway: a
// gzip body is accepted, a retry with the same idempotency key is a
// duplicate with the same batch id, and a bad key is a permanent error.
func TestClientAgainstGateway(t *testing.T) {
	st := startStack(t, "key-a acme\n", nil)
	base := strings.TrimSuffix(st.ingest, "/v1/events")
	c := client.New(base, "key-a")
	res, err := c.Send(t.Context(), map[string]any{"a": 1}, map[string]any{"b": 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 2 || res.BatchID == "" || res.Duplicate {
		t.Errorf("first send: %+v", res)
	}
	body := []byte(`{"events":[{"x":1}]}`)
	first, err := c.SendRaw(t.Context(), body, "application/json", "retry-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.SendRaw(t.Context(), body, "application/json", "retry-1")
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.BatchID != first.BatchID {
		t.Errorf("retry: %+v, want duplicate of %+v", again, first)
	}
	_, err = client.New(base, "wrong").Send(t.Context(), map[string]any{"a": 1})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Code != "unauthorized" {
		t.Errorf("bad key: err = %v", err)
	}
}
