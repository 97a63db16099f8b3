// Command sluice is the operator's tool for a running Sluice cluster: it
// shows the state of the stream, the workers' consumer and the dead-letter
// stream, lists, replays and purges dead letters, and shows receipts and
// reconciles the counters. It talks to NATS
// only, configured by the same SLUICE_* variables (or flags) as the servers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-ingest/sluice/pkg/config"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout)
	if errors.Is(err, config.ErrHelp) {
		return
	}
	if err != nil {
		// One line, whatever the error carries.
		fmt.Fprintln(os.Stderr, "sluice:", strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(1)
	}
}

// command is one entry of the command table. setup declares the command's
// own flags on fs and returns the function that runs it once the flags are
// parsed and NATS is connected.
type command struct {
	name     string // words after sluice: "status", "dlq list"
	synopsis string // its flags and arguments, for the usage
	summary  string
	args     int // how many positional arguments it takes
	setup    func(fs *flag.FlagSet) action
}

// action is what a command does once its flags are parsed: check (when
// set) refuses flag combinations before anything is connected, run does the
// work with its positional arguments.
type action struct {
	check func() error
	run   func(ctx context.Context, a *app, args []string) error
}

// commands is the command table.
func commands() []command {
	return []command{
		{"status", "[--json]", "The events stream, its consumers and their lag, the dead-letter stream", 0, statusCmd},
		{"dlq list", "[--tenant T] [--limit N] [--json]", "Dead letters, the oldest first, one per line", 0, dlqListCmd},
		{"dlq replay", "[--tenant T] [--limit N] [--dry-run]", "Publish dead letters back into the events stream under the tenant of their DLQ subject, then remove them; refuse those naming another tenant", 0, dlqReplayCmd},
		{"dlq purge", "[--tenant T] [--older-than D] [--all]", "Delete dead letters by tenant and/or age", 0, dlqPurgeCmd},
		{"receipt", "<batch_id> [--tenant T] [--json]", "What became of a batch: landed (in which objects), dead-lettered, or pending in the stream", 1, receiptCmd},
		{"reconcile", "--tenant T --from H [--to H] [--grace D] [--json]", "Events accepted, landed, dead-lettered and pending per hour; exits 1 when a closed hour differs", 0, reconcileCmd},
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmds := commands()
	if len(args) == 0 {
		return errors.New("missing command (run sluice -h for the commands)")
	}
	if slices.Contains([]string{"-h", "-help", "--help", "help"}, args[0]) {
		usage(stdout, cmds)
		return config.ErrHelp
	}
	c, rest, err := lookup(cmds, args)
	if err != nil {
		return err
	}
	if err := c.run(ctx, rest, getenv, stdout, time.Now); err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	return nil
}

// lookup finds the command args name and returns the arguments after it.
func lookup(cmds []command, args []string) (command, []string, error) {
	for _, c := range cmds {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			return c, args[len(words):], nil
		}
	}
	var sub []string
	for _, c := range cmds {
		if group, name, ok := strings.Cut(c.name, " "); ok && group == args[0] {
			sub = append(sub, name)
		}
	}
	if len(sub) > 0 {
		what := "missing"
		if len(args) > 1 {
			what = fmt.Sprintf("unknown %q", args[1])
		}
		return command{}, nil, fmt.Errorf("%s: %s subcommand: want %s (run sluice -h for the commands)", args[0], what, strings.Join(sub, ", "))
	}
	return command{}, nil, fmt.Errorf("unknown command %q (run sluice -h for the commands)", args[0])
}

func usage(w io.Writer, cmds []command) {
	fmt.Fprintln(w, "Usage: sluice <command> [flags]   (sluice <command> -h prints its flags and settings)")
	fmt.Fprintln(w)
	for _, c := range cmds {
		fmt.Fprintf(w, "  sluice %s %s\n      %s\n", c.name, c.synopsis, c.summary)
	}
}
