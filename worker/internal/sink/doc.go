// Package sink turns a cut object's messages into its S3 object (NDJSON or Parquet, as docs/objects.md says; the same
// messages always giving the same bytes) and uploads it once with
// If-None-Match: *. It owns every S3 call the worker makes, the judgement of
// whether an existing object is the one being uploaded, and the one
// decision of whether an upload error is permanent; it must not acknowledge
// messages.
package sink
