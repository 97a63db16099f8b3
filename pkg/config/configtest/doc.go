// Package configtest holds docs/configuration.md to the settings a binary
// declares: a test beside each binary's main passes the binary's -h output
// and the headings of the doc's tables for that process. It owns only that
// comparison; it must not hold any setting's name or meaning.
package configtest
