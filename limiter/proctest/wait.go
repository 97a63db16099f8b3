package proctest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ErrExited is returned by Poll and WaitHTTP when the process exited before
// it was ready.
var ErrExited = errors.New("the process exited")

// Poll calls try every interval until it returns nil, exited is closed
// (ErrExited) or ctx ends (ctx's error, with try's last one). A nil exited
// means no process to watch.
// A try cut short by ctx ending does not count as the last one.
func Poll(ctx context.Context, interval time.Duration, exited <-chan struct{}, try func(context.Context) error) error {
	var last error
	for {
		err := try(ctx)
		if err == nil {
			return nil
		}
		if last == nil || ctx.Err() == nil {
			last = err
		}
		select {
		case <-exited:
			return ErrExited
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(interval): // polling a condition
		}
	}
}

// WaitHTTP polls url every interval until it answers 200, exited is closed
// or ctx ends (see Poll).
func WaitHTTP(ctx context.Context, url string, interval time.Duration, exited <-chan struct{}) error {
	return Poll(ctx, interval, exited, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	})
}

// WaitTCP waits until addr accepts TCP connections or ctx ends.
func WaitTCP(ctx context.Context, addr string) error {
	var d net.Dialer
	err := Poll(ctx, 20*time.Millisecond, nil, func(ctx context.Context) error {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		return fmt.Errorf("wait for %s: %w", addr, err)
	}
	return nil
}
