package pipeline

import (
	"github.com/sluice-ingest/sluice/pkg/objkey"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// streamTag is the events stream's incarnation now.
func (h *harness) streamTag() string {
	h.t.Helper()
	st, err := h.js.Stream(h.t.Context(), stream.EventsStream)
	if err != nil {
		h.t.Fatal(err)
	}
	return objkey.StreamTag(st.CachedInfo().Created)
}
