// Package apierror is the catalogue of the gateway's API error codes: each
// code a typed constant, with the HTTP status it is answered with, in one
// table. The gateway answers with these codes and nothing else, the Go
// client reads them, and a test holds the table of docs/api.md to the same
// catalogue. It lives in the client's module so that the SDK depends on
// no other module of the repository. It must not do any I/O or know how a
// code is chosen.
package apierror
