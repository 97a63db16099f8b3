package main

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
)

const sluicePkg = "github.com/sluice-ingest/sluice/pkg/cmd/sluice"

// Every refusal is one line on stderr, nothing on stdout, and exit code 1;
// -h is the usage on stdout and exit code 0.
func TestRefusals(t *testing.T) {
	bin := devtest.Binary(t, sluicePkg)
	empty := devtest.NATS(t) // NATS without Sluice's streams
	unreachable := "nats://" + devtest.Addr(t)
	c := newCluster(t)

	for _, tc := range []struct {
		name string
		url  string
		args []string
		want string // the line on stderr
	}{
		{"no command", c.n.URL(), nil, "sluice: missing command (run sluice -h for the commands)"},
		{"unknown command", c.n.URL(), []string{"replicate"}, `sluice: unknown command "replicate" (run sluice -h for the commands)`},
		{"missing subcommand", c.n.URL(), []string{"dlq"}, "sluice: dlq: missing subcommand: want list, replay, purge (run sluice -h for the commands)"},
		{"unknown subcommand", c.n.URL(), []string{"dlq", "show"}, `sluice: dlq: unknown "show" subcommand: want list, replay, purge (run sluice -h for the commands)`},
		{"unknown flag", c.n.URL(), []string{"dlq", "list", "--follow"}, "sluice: dlq list: flag provided but not defined: -follow (run sluice dlq list -h for every setting)"},
		{"bad limit", c.n.URL(), []string{"dlq", "replay", "--limit", "0"}, `sluice: dlq replay: invalid value "0" for flag -limit: want a whole number of at least 1 (run sluice dlq replay -h for its flags)`},
		{"bad tenant", c.n.URL(), []string{"dlq", "list", "--tenant", "acme.>"}, `sluice: dlq list: invalid value "acme.>" for flag -tenant: not a tenant id ([a-z0-9_-]{1,64}) (run sluice dlq list -h for its flags)`},
		{"bad age", c.n.URL(), []string{"dlq", "purge", "--older-than", "yesterday"}, `sluice: dlq purge: invalid value "yesterday" for flag -older-than: want a positive duration (e.g. 24h, 30m) (run sluice dlq purge -h for its flags)`},
		{"purge without a filter", c.n.URL(), []string{"dlq", "purge"}, "sluice: dlq purge: refusing to purge every dead letter without a filter: give --tenant, --older-than, or --all"},
		{"argument", c.n.URL(), []string{"status", "now"}, `sluice: status: unexpected argument "now" (run sluice status -h for its flags)`},
		{"bad setting", "", []string{"status", "--nats-url", unreachable, "--timeout", "0s"}, "sluice: status: -timeout 0s: must be positive"},
		{"nats unreachable", unreachable, []string{"status", "--timeout", "300ms"}, "sluice: status: cannot reach NATS at " + unreachable + " within 300ms: no server answered"},
		{"events stream missing", empty.URL(), []string{"status"}, "sluice: status: stream not found: SLUICE_EVENTS"},
		{"dlq missing", empty.URL(), []string{"dlq", "list"}, "sluice: dlq list: stream not found: SLUICE_DLQ"},
		{"dlq missing for replay", empty.URL(), []string{"dlq", "replay", "--dry-run"}, "sluice: dlq replay: stream not found: SLUICE_DLQ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			cmd.Env = devtest.Env(map[string]string{"SLUICE_NATS_URL": tc.url})
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("exit: %v", err)
			}
			if got := stderr.String(); got != tc.want+"\n" {
				t.Errorf("stderr %q\nwant   %q", got, tc.want+"\n")
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q", stdout.String())
			}
		})
	}

	for _, args := range [][]string{{"-h"}, {"dlq", "purge", "-h"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil || !strings.HasPrefix(string(out), "Usage: sluice") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
}
