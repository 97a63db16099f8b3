// Package apierror is the catalogue of the gateway's API error codes: each a
// typed constant with its HTTP status, in one table that the gateway answers
// with, the Go client reads and a test holds docs/api.md to. It lives in the
// client's module so that the SDK depends on no other module of the
// repository. It must not do any I/O or know how a code is chosen.
package apierror
