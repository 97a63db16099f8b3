package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/sluice-ingest/sluice/pkg/admin"
)

// hourLayouts are the forms --from and --to take, all UTC but RFC 3339.
var hourLayouts = []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02T15", "2006-01-02"}

func timeFlag(fs *flag.FlagSet, name, usage string, t *time.Time) {
	fs.Func(name, usage, func(s string) error {
		for _, l := range hourLayouts {
			if v, err := time.ParseInLocation(l, s, time.UTC); err == nil {
				*t = v.UTC()
				return nil
			}
		}
		return errors.New("want a time such as 2026-12-01T14, 2026-12-01T14:00, 2026-12-01 (UTC) or RFC 3339")
	})
}

// maxHours bounds a reconciliation: each hour costs three reads.
const maxHours = 24 * 93

func reconcileCmd(fs *flag.FlagSet) action {
	var (
		tenant   string
		from, to time.Time
	)
	tenantFlagFor(fs, &tenant, "the tenant `T` to reconcile (required)")
	timeFlag(fs, "from", "first hour `H` (required)", &from)
	timeFlag(fs, "to", "last hour `H` (default: now)", &to)
	grace := fs.Duration("grace", 2*time.Minute, "an hour is closed this long after its end (and once the events stream holds nothing of it)")
	asJSON := fs.Bool("json", false, "one JSON object per hour")
	check := func() error {
		switch {
		case tenant == "":
			return errors.New("--tenant is required")
		case from.IsZero():
			return errors.New("--from is required")
		case !to.IsZero() && to.Before(from):
			return fmt.Errorf("--to %s is before --from %s", to.Format(time.RFC3339), from.Format(time.RFC3339))
		case *grace < 0:
			return errors.New("--grace must not be negative")
		}
		return nil
	}
	return action{check: check, run: func(ctx context.Context, a *app, _ []string) error {
		now := a.now().UTC()
		end := to
		if end.IsZero() {
			end = now
		}
		if end.Sub(from) > maxHours*time.Hour {
			return fmt.Errorf("--from %s to --to %s is more than %d hours", from.Format(time.RFC3339), end.Format(time.RFC3339), maxHours)
		}
		hours, err := admin.Reconcile(ctx, a.js, a.stream, tenant, from, end, now, *grace)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(a.out)
		if !*asJSON {
			fmt.Fprintf(a.out, "%-17s %12s %12s %12s %12s  %s\n", "HOUR (UTC)", "ACCEPTED", "LANDED", "DEAD", "PENDING", "STATE")
		}
		differ := 0
		for _, h := range hours {
			state := "open"
			switch {
			case h.Differs():
				state, differ = "DIFFERS", differ+1
			case h.Closed:
				state = "ok"
			}
			if *asJSON {
				if err := enc.Encode(struct {
					admin.Hour
					State string `json:"state"`
				}{h, state}); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(a.out, "%-17s %12d %12d %12d %12d  %s\n", h.Hour.Format("2006-01-02T15:04Z"), h.Accepted, h.Landed, h.Dead, h.Pending, state)
		}
		if differ > 0 {
			return fmt.Errorf("%d closed hour(s) of tenant %s differ: accepted is not landed + dead", differ, tenant)
		}
		return nil
	}}
}
