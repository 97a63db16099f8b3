package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/sluice-ingest/sluice/client/apierror"
	"github.com/sluice-ingest/sluice/gateway/internal/body"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/ledger"
	"github.com/sluice-ingest/sluice/pkg/receipts"
)

// ReceiptReader is the one call GET /v1/receipts/{batch_id} makes:
// *receipts.Reader is one.
type ReceiptReader interface {
	Get(ctx context.Context, tenant, batchID string) (receipts.Receipt, error)
}

// Tally counts events in memory and flushes them to the counter stream
// off the request path: *ledger.Tally is one.
type Tally interface {
	Add(kind ledger.Kind, tenant string, at time.Time, n int)
}

// receiptTimeout bounds the receipt lookup.
const receiptTimeout = 2 * time.Second

// receipt serves GET /v1/receipts/{batch_id}: the receipt the workers wrote
// for a batch of the key's tenant. A batch id of another tenant is as
// unknown as one never issued (the tenant is part of the receipt's key), and
// so is a batch accepted whose events have not landed yet: the gateway
// writes nothing per request, so it cannot tell those apart.
func (h *Handler) receipt(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", http.MethodGet)
		h.fail(w, r, &body.Error{Code: apierror.MethodNotAllowed, Message: r.Method + " is not allowed; use GET"})
		return
	}
	key, err := h.cfg.Auth.Authenticate(r)
	if err != nil {
		h.fail(w, r, &body.Error{Code: apierror.Unauthorized, Message: err.Error()})
		return
	}
	id := r.PathValue("batch_id")
	if !envelope.ValidBatchID(id) || h.cfg.Receipts == nil {
		h.fail(w, r, notFound(id))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), receiptTimeout)
	defer cancel()
	rec, err := h.cfg.Receipts.Get(ctx, key.Tenant, id)
	switch {
	case errors.Is(err, receipts.ErrNotFound):
		h.fail(w, r, notFound(id))
		return
	case err != nil:
		h.cfg.Log.Warn("receipt lookup failed", "err", err)
		h.fail(w, r, errUnavailable)
		return
	}
	h.cfg.Metrics.requests.WithLabelValues("200").Inc()
	writeJSON(w, http.StatusOK, rec)
}

func notFound(id string) *body.Error {
	return &body.Error{Code: apierror.NotFound,
		Message: "no receipt for batch id " + quoteID(id) + " of this tenant: unknown, expired, or accepted and not landed yet"}
}

// quoteID shows at most 128 bytes of what the client sent.
func quoteID(id string) string {
	if len(id) > 128 {
		id = id[:128] + "..."
	}
	return strconv.Quote(id)
}
