// Package config reads a process's settings from SLUICE_* environment
// variables, each mirrored by a command-line flag, and prints them all for
// -h. Every bad value becomes one error naming the variable. It owns the
// parsing of sizes (64KiB, 8MiB) and durations; it must not hold any
// setting's meaning, which belongs to the binary that declares it.
package config
