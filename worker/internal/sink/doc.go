// Package sink turns a batch into an S3 object (NDJSON lines or Parquet,
// compression, key and metadata as docs/objects.md says; the
// same messages always give the same bytes) and uploads it
// once: a single PutObject or a multipart upload, both with If-None-Match:
// *. It owns every S3 call the worker makes, the judgement of whether an
// existing object is the batch being uploaded, and the one decision of
// whether an upload error is permanent; it must not acknowledge messages,
// which is the pipeline's job once Put returned nil.
package sink
