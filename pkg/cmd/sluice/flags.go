package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ingest/sluice/pkg/config"
	"github.com/sluice-ingest/sluice/pkg/stream"
)

// app is what a command's action works with.
type app struct {
	js       jetstream.JetStream
	stream   string // SLUICE_STREAM
	consumer string // SLUICE_CONSUMER
	timeout  time.Duration
	out      io.Writer
	now      func() time.Time
}

// connSettings are the servers' NATS settings the commands share.
type connSettings struct {
	url, creds, stream, consumer string
}

func (s *connSettings) declare(cs *config.Set) {
	cs.String(&s.url, "SLUICE_NATS_URL", nats.DefaultURL, "NATS server URL; a comma-separated list for a cluster")
	cs.String(&s.creds, "SLUICE_NATS_CREDS", "", "NATS credentials (.creds) file")
	cs.String(&s.stream, "SLUICE_STREAM", stream.EventsStream, "JetStream stream holding accepted requests")
	cs.String(&s.consumer, "SLUICE_CONSUMER", stream.Consumer, "the workers' durable pull consumer")
}

// run parses args (the command's own flags, the settings' flags and the
// positional arguments, in any order), connects and runs the action.
func (c command) run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, now func() time.Time) error {
	fs := flag.NewFlagSet("sluice "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	timeout := fs.Duration("timeout", 5*time.Second, "longest wait for NATS to connect, and to answer each request")
	act := c.setup(fs)
	var s connSettings
	cs := config.New("sluice "+c.name, getenv)
	s.declare(cs)

	own, settings, pos := splitArgs(fs, args)
	if err := fs.Parse(own); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage(stdout, fs, cs)
			return config.ErrHelp
		}
		return fmt.Errorf("%w (run sluice %s -h for its flags)", err, c.name)
	}
	if err := cs.Parse(settings, stdout); err != nil {
		return err
	}
	if len(pos) > c.args {
		return fmt.Errorf("unexpected argument %q (run sluice %s -h for its flags)", pos[c.args], c.name)
	}
	if len(pos) < c.args {
		return fmt.Errorf("missing argument (run sluice %s -h)", c.name)
	}
	if *timeout <= 0 {
		return fmt.Errorf("-timeout %s: must be positive", *timeout)
	}
	if act.check != nil {
		if err := act.check(); err != nil {
			return err
		}
	}
	nc, err := s.connect(ctx, *timeout)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(*timeout))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	return act.run(ctx, &app{js: js, stream: s.stream, consumer: s.consumer, timeout: *timeout, out: stdout, now: now}, pos)
}

// connect dials NATS with the servers' Connect and waits until the server
// answers: Connect keeps retrying in the background, which suits a server
// but would leave a command waiting forever.
func (s connSettings) connect(ctx context.Context, timeout time.Duration) (*nats.Conn, error) {
	// The connection's own warnings (disconnects, retries) would add lines
	// to an error that already says what failed.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	nc, err := stream.Connect(s.url, s.creds, "sluice-cli", quiet)
	if err != nil {
		return nil, err
	}
	fctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := nc.FlushWithContext(fctx); err != nil {
		why := "no server answered"
		if last := nc.LastError(); last != nil {
			why = last.Error()
		}
		nc.Close()
		return nil, fmt.Errorf("cannot reach NATS at %s within %s: %s", redact(s.url), timeout, why)
	}
	return nc, nil
}

// redact hides the user information of every URL of a comma-separated list.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = url.User("xxxxx")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// splitArgs sorts args into the command's own flags (those fs defines, and
// -h), the settings' flags (every other flag, each taking a value, left for
// the config set to accept or refuse) and the positional arguments.
func splitArgs(fs *flag.FlagSet, args []string) (own, settings, pos []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return own, settings, append(pos, args[i+1:]...)
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		name, _, inline := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := fs.Lookup(name)
		help := name == "h" || name == "help"
		to := &settings
		if f != nil || help {
			to = &own
		}
		*to = append(*to, a)
		if !inline && !help && !isBool(f) && i+1 < len(args) {
			i++
			*to = append(*to, args[i])
		}
	}
	return own, settings, pos
}

func isBool(f *flag.Flag) bool {
	if f == nil {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func (c command) usage(w io.Writer, fs *flag.FlagSet, cs *config.Set) {
	fmt.Fprintf(w, "Usage: sluice %s %s\n\n%s.\n\nFlags:\n", c.name, c.synopsis, c.summary)
	fs.SetOutput(w)
	fs.PrintDefaults()
	var b bytes.Buffer
	cs.Usage(&b)
	_, settings, _ := strings.Cut(b.String(), "\n")
	fmt.Fprintf(w, "\nNATS settings: each an environment variable, or the flag beside it.\n%s", settings)
}
