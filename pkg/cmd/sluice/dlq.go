package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-ingest/sluice/pkg/admin"
	"github.com/sluice-ingest/sluice/pkg/envelope"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// filterFlags declares --tenant and --limit, both checked as they are parsed.
func filterFlags(fs *flag.FlagSet, f *admin.Filter) {
	tenantFlag(fs, &f.Tenant)
	fs.Func("limit", "at most `N` dead letters, the oldest first (default: all)", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return errors.New("want a whole number of at least 1")
		}
		f.Limit = n
		return nil
	})
}

func tenantFlag(fs *flag.FlagSet, tenant *string) {
	tenantFlagFor(fs, tenant, "only the dead letters of tenant `T` (subject "+stream.DLQSubject("T")+")")
}

// tenantFlagFor declares --tenant with its usage, checked as it is parsed.
func tenantFlagFor(fs *flag.FlagSet, tenant *string, usage string) {
	fs.Func("tenant", usage, func(s string) error {
		if !envelope.ValidTenant(s) {
			return errors.New("not a tenant id ([a-z0-9_-]{1,64})")
		}
		*tenant = s
		return nil
	})
}

func dlqListCmd(fs *flag.FlagSet) action {
	var f admin.Filter
	filterFlags(fs, &f)
	asJSON := fs.Bool("json", false, "one JSON object per line")
	return action{run: func(ctx context.Context, a *app, _ []string) error {
		dlq, err := admin.OpenDLQ(ctx, a.js)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(a.out)
		if !*asJSON {
			fmt.Fprintf(a.out, "%-8s %-20s %-12s %-26s %-10s %-6s %s\n", "SEQ", "STORED", "TENANT", "BATCH_ID", "DELIVERIES", "EVENTS", "ERROR")
		}
		return dlq.Scan(ctx, f, func(dl admin.DeadLetter) error {
			if *asJSON {
				return enc.Encode(dl)
			}
			_, err := fmt.Fprintf(a.out, "%-8d %-20s %-12s %-26s %-10s %-6s %s\n", dl.Seq, dl.Time.Format(time.RFC3339),
				orDash(dl.Tenant), orDash(dl.BatchID), numOrDash(dl.Deliveries), numOrDash(dl.Events), orDash(dl.Error))
			return err
		})
	}}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func numOrDash[T int | uint64](p *T) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func dlqReplayCmd(fs *flag.FlagSet) action {
	var f admin.Filter
	filterFlags(fs, &f)
	dryRun := fs.Bool("dry-run", false, "print what would be published (subject, headers); publish and delete nothing")
	return action{run: func(ctx context.Context, a *app, _ []string) error {
		dlq, err := admin.OpenDLQ(ctx, a.js)
		if err != nil {
			return err
		}
		var replayed, skipped, refused int
		err = dlq.Replayer(a.stream).Replay(ctx, f, *dryRun, a.timeout, func(r admin.Replayed) error {
			line := fmt.Sprintf("seq=%d tenant=%s batch_id=%s events=%s", r.Seq, orDash(r.Tenant), orDash(r.BatchID), numOrDash(r.Events))
			switch {
			case errors.Is(r.Skipped, admin.ErrRefused):
				refused++
				fmt.Fprintf(a.out, "refused %s: %v\n", line, r.Skipped)
			case r.Skipped != nil:
				skipped++
				fmt.Fprintf(a.out, "skipped %s: %v\n", line, r.Skipped)
			case *dryRun:
				replayed++
				fmt.Fprintf(a.out, "would replay %s to %s with %s\n", line, r.Msg.Subject, headerList(r.Msg.Header))
			default:
				replayed++
				dup := ""
				if r.Ack.Duplicate {
					dup = " (already there: published by an earlier replay)"
				}
				fmt.Fprintf(a.out, "replayed %s to %s -> %s seq=%d%s\n", line, r.Msg.Subject, r.Ack.Stream, r.Ack.Sequence, dup)
			}
			return nil
		})
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted after %d replayed: run it again to go on", replayed)
		}
		if err != nil {
			return fmt.Errorf("after %d replayed: %w", replayed, err)
		}
		verb := "replayed"
		if *dryRun {
			verb = "would replay"
		}
		fmt.Fprintf(a.out, "%s %d, skipped %d, refused %d (they stay in %s)\n", verb, replayed, skipped, refused, stream.DLQStream)
		return nil
	}}
}

// headerList is a message's headers as Key=value, sorted by key; a value
// holding a space or a quote is quoted.
func headerList(h nats.Header) string {
	keys := slices.Sorted(maps.Keys(h))
	var b strings.Builder
	for _, k := range keys {
		for _, v := range h[k] {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			if strings.ContainsAny(v, " \"") {
				v = strconv.Quote(v)
			}
			b.WriteString(k + "=" + v)
		}
	}
	return b.String()
}

func dlqPurgeCmd(fs *flag.FlagSet) action {
	var f admin.PurgeFilter
	tenantFlag(fs, &f.Tenant)
	fs.Func("older-than", "only dead letters stored longer than `D` ago (e.g. 24h, 30m)", func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return errors.New("want a positive duration (e.g. 24h, 30m)")
		}
		f.OlderThan = d
		return nil
	})
	fs.BoolVar(&f.All, "all", false, "allow purging every dead letter (with neither --tenant nor --older-than)")
	check := func() error {
		if f.Tenant == "" && f.OlderThan == 0 && !f.All {
			return fmt.Errorf("%w: give --tenant, --older-than, or --all", admin.ErrNoFilter)
		}
		return nil
	}
	return action{check: check, run: func(ctx context.Context, a *app, _ []string) error {
		dlq, err := admin.OpenDLQ(ctx, a.js)
		if err != nil {
			return err
		}
		n, err := dlq.Purge(ctx, a.now(), f)
		if err != nil {
			return err
		}
		noun := "dead letters"
		if n == 1 {
			noun = "dead letter"
		}
		fmt.Fprintf(a.out, "purged %d %s\n", n, noun)
		return nil
	}}
}
