package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sluice-ingest/sluice/pkg/admin"
)

func statusCmd(fs *flag.FlagSet) action {
	asJSON := fs.Bool("json", false, "print the status as one JSON object")
	return action{run: func(ctx context.Context, a *app, _ []string) error {
		s, err := admin.GetStatus(ctx, a.js, a.stream, a.consumer)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(a.out).Encode(s)
		}
		printStatus(a.out, s, a.consumer, a.now())
		return nil
	}}
}

func printStatus(w io.Writer, s admin.Status, workers string, now time.Time) {
	fmt.Fprintf(w, "server %s (%s, nats-server %s)\n\n", s.Server.URL, s.Server.Name, s.Server.Version)
	printStream(w, s.Events, now)
	fmt.Fprintln(w)

	found := false
	for _, c := range s.Consumers {
		found = found || c.Workers
		printConsumer(w, c, now)
	}
	if !found {
		fmt.Fprintf(w, "consumers %s-pNN: missing (no worker has started on %s)\n\n", workers, s.Events.Name)
	}

	printStream(w, s.DLQ, now)
	tenants := make([]string, 0, len(s.DLQTenants))
	for t := range s.DLQTenants {
		tenants = append(tenants, t)
	}
	// The tenants with the most dead letters first; at most ten are named.
	slices.SortFunc(tenants, func(a, b string) int {
		return cmp.Or(cmp.Compare(s.DLQTenants[b], s.DLQTenants[a]), strings.Compare(a, b))
	})
	if len(tenants) > 0 {
		var parts []string
		for _, t := range tenants[:min(10, len(tenants))] {
			parts = append(parts, fmt.Sprintf("%s %d", t, s.DLQTenants[t]))
		}
		if len(tenants) > 10 {
			parts = append(parts, fmt.Sprintf("and %d more tenants", len(tenants)-10))
		}
		fmt.Fprintf(w, "  by tenant        %s\n", strings.Join(parts, ", "))
	}
}

func printStream(w io.Writer, st admin.StreamInfo, now time.Time) {
	l := st.Limits
	fmt.Fprintf(w, "stream %s (created %s)\n", st.Name, st.Created.Format(time.RFC3339))
	fmt.Fprintf(w, "  messages         %d (%s)\n", st.Messages, size(int64(st.Bytes)))
	if st.Messages > 0 {
		fmt.Fprintf(w, "  oldest           seq %d at %s\n", st.FirstSeq, when(st.FirstTime, now))
		fmt.Fprintf(w, "  newest           seq %d at %s\n", st.LastSeq, when(st.LastTime, now))
	} else if st.LastTime != nil {
		fmt.Fprintf(w, "  last stored      seq %d at %s, no longer held\n", st.LastSeq, when(st.LastTime, now))
	}
	if st.Deleted > 0 {
		fmt.Fprintf(w, "  deleted          %d inside the range\n", st.Deleted)
	}
	fmt.Fprintf(w, "  limits           max bytes %s, max messages %s, max age %s, discard %s\n",
		size(l.MaxBytes), count(l.MaxMsgs), age(time.Duration(l.MaxAge)), l.Discard)
	fmt.Fprintf(w, "  storage          %s, %s retention, %d replica(s), duplicate window %s\n", l.Storage, l.Retention, l.Replicas, l.Duplicates)
	if len(st.Replicas) > 0 {
		peers := []string{st.Leader + " (leader)"}
		for _, r := range st.Replicas {
			state := "current"
			switch {
			case r.Offline:
				state = "offline"
			case !r.Current:
				state = fmt.Sprintf("behind by %d", r.Lag)
			}
			peers = append(peers, fmt.Sprintf("%s (%s)", r.Name, state))
		}
		fmt.Fprintf(w, "  servers          %s\n", strings.Join(peers, ", "))
	}
}

func printConsumer(w io.Writer, c admin.Consumer, now time.Time) {
	role := ""
	if c.Workers {
		role = " (the workers')"
	}
	fmt.Fprintf(w, "consumer %s%s\n", c.Name, role)
	fmt.Fprintf(w, "  lag              %d not yet delivered, %d delivered and not acknowledged (max %s), %d of them redelivered\n",
		c.Pending, c.AckPending, count(int64(c.MaxAckPending)), c.Redelivered)
	fmt.Fprintf(w, "  waiting pulls    %d\n", c.Waiting)
	fmt.Fprintf(w, "  last delivery    %s\n", when(c.LastDelivered, now))
	fmt.Fprintf(w, "  last ack         %s (ack floor seq %d)\n", when(c.LastAcked, now), c.AckFloorSeq)
	fmt.Fprintf(w, "  ack wait         %s\n", c.AckWait)
	if c.Paused {
		fmt.Fprintln(w, "  paused           yes: nothing is delivered until it is resumed")
	}
	if c.Workers {
		fmt.Fprintf(w, "  workers          %s\n", workersLine(c))
	}
	fmt.Fprintln(w)
}

// workersLine says what the consumer tells about the workers. NATS counts
// neither workers nor gateways; a worker that runs keeps a pull request
// waiting at the server whenever it has room for more messages.
func workersLine(c admin.Consumer) string {
	switch {
	case c.Waiting > 0:
		return "pulling: at least one worker is connected and asking for messages"
	case c.AckPending > 0:
		return "none waiting: the workers hold as many messages as they may, or they are gone (then the messages come back after the ack wait)"
	case c.Pending > 0:
		return "NONE PULLING: messages wait and no worker asks for them"
	default:
		return "none pulling, and nothing to do"
	}
}

func when(t *time.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return fmt.Sprintf("%s (%s ago)", t.Format(time.RFC3339), now.Sub(*t).Round(time.Second))
}

func count(n int64) string {
	if n <= 0 {
		return "unlimited"
	}
	return fmt.Sprint(n)
}

func age(d time.Duration) string {
	if d <= 0 {
		return "unlimited"
	}
	return d.String()
}

// size prints a byte count in B, KiB, MiB, GiB or TiB; a negative one (a
// stream limit of -1) is unlimited.
func size(n int64) string {
	if n < 0 {
		return "unlimited"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", v, []string{"B", "KiB", "MiB", "GiB", "TiB"}[i])
}
