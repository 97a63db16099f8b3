package api

import (
	"net/http"

	"github.com/sluice-ingest/sluice/gateway/internal/otlp"
)

// logs serves OTLP/HTTP logs: the steps of events, with the body decoded
// by the otlp package and every answer in the request's encoding (an
// ExportLogsServiceResponse after the PubAck, a google.rpc.Status for a
// refusal). A request whose records all map to nothing publishes nothing.
func (h *Handler) logs(w http.ResponseWriter, r *http.Request) {
	enc, encErr := otlp.EncodingOf(r.Header.Get("Content-Type"))
	in, err := h.begin(w, r)
	if err != nil {
		h.failOTLP(w, r, enc, err)
		return
	}
	defer h.release()
	if encErr != nil {
		h.failOTLP(w, r, enc, encErr)
		return
	}

	lim := h.budget.Limits()
	batch, err := h.logsDec.Decode(http.MaxBytesReader(w, r.Body, lim.MaxBodyBytes), enc, r.Header.Get("Content-Encoding"))
	if err != nil {
		h.failOTLP(w, r, enc, err)
		return
	}
	defer batch.Release()

	if batch.Events > 0 {
		meta, _, err := h.commit(w, r, in, batch.Body, batch.Events)
		if err != nil {
			h.failOTLP(w, r, enc, err)
			return
		}
		w.Header().Set("Sluice-Batch-Id", meta.BatchID)
	}
	h.cfg.Metrics.requests.WithLabelValues("200").Inc()
	w.Header().Set("Content-Type", enc.ContentType())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(otlp.Response(enc, batch.Rejected, batch.Reason)) // an error here means the client went away
}

// failOTLP answers a refused OTLP request with a google.rpc.Status in enc.
func (h *Handler) failOTLP(w http.ResponseWriter, r *http.Request, enc otlp.Encoding, err error) {
	ae := h.refusal(w, r, err)
	w.Header().Set("Content-Type", enc.ContentType())
	w.WriteHeader(ae.Status())
	_, _ = w.Write(otlp.Status(enc, ae))
}
