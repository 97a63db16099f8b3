// Package telemetry owns what every Sluice process exposes to operators: its
// own Prometheus registry, its slog logger, and the admin HTTP server with
// /healthz (alive), /readyz (able to do its work), /metrics and, behind a
// flag, /debug/pprof/. It must not define any component's metrics.
package telemetry
