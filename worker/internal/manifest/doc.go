// Package manifest owns the partition manifests: once a tenant's hour can
// receive nothing more (its hour plus SLUICE_MANIFEST_GRACE has passed and
// no message of it is held or left to deliver), the owner of the tenant's
// partition writes <prefix>/tenant=<t>/dt=…/hour=…/_manifest.json, once
// (If-None-Match), listing every object of the hour; a later object of the
// hour gets an amended manifest under a new name. It reads object metadata
// and lists keys; it must not write or change data objects.
package manifest
