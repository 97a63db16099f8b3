// Package sink turns a batch into an S3 object (line format, compression,
// key and metadata of the DESIGN contract) and uploads it. It owns every S3
// call the worker makes; it must not acknowledge messages, which is the
// pipeline's job once Put returned nil.
package sink
