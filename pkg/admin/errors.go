package admin

import "errors"

var (
	// ErrStreamMissing is returned when a stream the command needs does not
	// exist: no gateway or worker has created it on this NATS yet.
	ErrStreamMissing = errors.New("stream not found")
	// ErrNotReplayable marks a dead letter whose headers can never be stored;
	// replaying it would only dead-letter it again.
	ErrNotReplayable = errors.New("not replayable")
	// ErrRefused marks a dead letter that replay leaves in the DLQ because
	// its headers name another tenant than its subject, or its batch id is
	// another tenant's (foreign.go).
	ErrRefused = errors.New("another tenant's")
	// ErrNoFilter is returned by Purge when it was given neither a tenant, an
	// age nor All.
	ErrNoFilter = errors.New("refusing to purge every dead letter without a filter")
)
