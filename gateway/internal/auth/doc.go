// Package auth maps API keys to tenants. Keys come from a keys file
// (`key tenant [policy]` per line, or `sha256:<hex>` instead of the key) and
// are held only as SHA-256 digests. It owns key lookup and the keys file
// format; it must not log keys or decide rate limits (it only carries each
// key's policy text).
package auth
