// Package objkey owns the S3 object key contract:
// <prefix>/tenant=<tenant>/dt=YYYY-MM-DD/hour=HH/<first-seq>-<last-seq>[-<stream-created>].<ext>.
// Query engines and operators depend on this layout; it formats and parses
// keys and must not perform any I/O.
package objkey
