// Package manifest owns the partition manifests: once a tenant's hour can
// receive nothing more (its hour plus SLUICE_MANIFEST_GRACE has passed and
// no message of it is held or left in the events stream), the reader of a
// consumer that delivered it writes <prefix>/tenant=<t>/dt=…/hour=…/
// _manifest.json, once (If-None-Match), listing every object of the hour;
// a later object of the hour gets an amended manifest under a new name.
// The hours still open are recorded in the KV bucket SLUICE_HOURS, so
// closing one does not depend on the worker that saw it open. It reads
// object metadata, lists keys and reads the events stream; it must not
// write or change data objects, nor ack or fetch messages.
package manifest
