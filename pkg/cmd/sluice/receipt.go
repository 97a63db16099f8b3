package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/sluice-ingest/sluice/pkg/admin"
	"github.com/sluice-ingest/sluice/pkg/receipts"
)

func receiptCmd(fs *flag.FlagSet) action {
	var tenant string
	tenantFlagFor(fs, &tenant, "the batch's tenant `T` (default: look in every tenant)")
	asJSON := fs.Bool("json", false, "one JSON object per line: the API's receipt with tenant (and seq while pending)")
	return action{run: func(ctx context.Context, a *app, args []string) error {
		found, err := admin.FindReceipt(ctx, a.js, a.stream, tenant, args[0])
		if errors.Is(err, receipts.ErrNotFound) {
			where := "any tenant"
			if tenant != "" {
				where = "tenant " + tenant
			}
			return fmt.Errorf("no receipt for batch %s of %s, and no message of it in %s: never accepted, or its receipt expired (SLUICE_RECEIPT_TTL)", args[0], where, a.stream)
		}
		if err != nil {
			return err
		}
		for _, f := range found {
			if *asJSON {
				if err := json.NewEncoder(a.out).Encode(f); err != nil {
					return err
				}
				continue
			}
			printReceipt(a.out, f, a.stream)
		}
		return nil
	}}
}

func printReceipt(w io.Writer, f admin.Found, events string) {
	fmt.Fprintf(w, "batch %s of tenant %s: %s\n", f.BatchID, f.Tenant, f.Status)
	fmt.Fprintf(w, "  events     %d\n", f.Events)
	switch f.Status {
	case admin.StatusPending:
		fmt.Fprintf(w, "  waiting    in %s, seq %d\n", events, f.Seq)
	case receipts.StatusDeadLettered:
		fmt.Fprintf(w, "  error      %s\n", f.Error)
	}
	if f.LandedAt != nil {
		fmt.Fprintf(w, "  landed at  %s\n", f.LandedAt.Format(time.RFC3339Nano))
	}
	for _, o := range f.Objects {
		fmt.Fprintf(w, "  object     %s (%d events)\n", o.Key, o.Events)
	}
}
