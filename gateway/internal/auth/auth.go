package auth

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"

	"github.com/sluice-ingest/sluice/pkg/envelope"
)

// DefaultTenant is the tenant of every request when auth is off.
const DefaultTenant = "default"

// ErrNoKey and ErrUnknownKey are the two ways a request fails to authenticate.
var (
	ErrNoKey      = errors.New("missing API key: send Authorization: Bearer <key> or X-API-Key")
	ErrUnknownKey = errors.New("unknown API key")
)

// Key is what an API key grants.
type Key struct {
	Tenant string
	// Policy is the key's own rate policy text (e.g. "1000/s,burst=2000"),
	// empty for the default policy.
	Policy string
}

// Keys is an immutable set of API keys.
type Keys struct {
	byDigest map[[sha256.Size]byte]Key
}

// Len is the number of keys.
func (k *Keys) Len() int { return len(k.byDigest) }

// ParseKeys reads a keys file: one `key tenant [policy]` per line, where key
// may be `sha256:<64 hex digits>`; `#` starts a comment. validPolicy, when not
// nil, checks each policy text.
func ParseKeys(r io.Reader, validPolicy func(string) error) (*Keys, error) {
	ks := &Keys{byDigest: map[[sha256.Size]byte]Key{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("line %d: want `key tenant [policy]`, got %d fields", n, len(f))
		}
		digest, err := digestOf(f[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		k := Key{Tenant: f[1]}
		if !envelope.ValidTenant(k.Tenant) {
			return nil, fmt.Errorf("line %d: tenant %q: want [a-z0-9_-]{1,64}", n, k.Tenant)
		}
		if len(f) == 3 {
			k.Policy = f[2]
			if validPolicy != nil {
				if err := validPolicy(k.Policy); err != nil {
					return nil, fmt.Errorf("line %d: policy %q: %w", n, k.Policy, err)
				}
			}
		}
		if _, dup := ks.byDigest[digest]; dup {
			return nil, fmt.Errorf("line %d: key listed twice", n)
		}
		ks.byDigest[digest] = k
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read keys: %w", err)
	}
	return ks, nil
}

func digestOf(field string) ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	if h, ok := strings.CutPrefix(field, "sha256:"); ok {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != sha256.Size {
			return d, errors.New("sha256: form needs 64 hex digits")
		}
		copy(d[:], b)
		return d, nil
	}
	return sha256.Sum256([]byte(field)), nil
}

// LoadKeysFile reads and parses a keys file.
func LoadKeysFile(path string, validPolicy func(string) error) (*Keys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open keys file: %w", err)
	}
	defer f.Close()
	ks, err := ParseKeys(f, validPolicy)
	if err != nil {
		return nil, fmt.Errorf("keys file %s: %w", path, err)
	}
	return ks, nil
}

// Authenticator resolves the API key of a request. Its keys can be replaced
// while requests are being served.
type Authenticator struct {
	none bool
	keys atomic.Pointer[Keys]
}

// NewAuthenticator authenticates against keys.
func NewAuthenticator(keys *Keys) *Authenticator {
	a := &Authenticator{}
	a.keys.Store(keys)
	return a
}

// NoAuth maps every request to DefaultTenant (development only).
func NoAuth() *Authenticator { return &Authenticator{none: true} }

// Replace swaps in a new key set.
func (a *Authenticator) Replace(keys *Keys) { a.keys.Store(keys) }

// Authenticate returns what the request's API key grants. Lookup is by the
// key's SHA-256 digest, so its time does not depend on how much of a
// presented key matches a real one.
func (a *Authenticator) Authenticate(r *http.Request) (Key, error) {
	if a.none {
		return Key{Tenant: DefaultTenant}, nil
	}
	presented := KeyFromRequest(r)
	if presented == "" {
		return Key{}, ErrNoKey
	}
	k, ok := a.keys.Load().byDigest[sha256.Sum256([]byte(presented))]
	if !ok {
		return Key{}, ErrUnknownKey
	}
	return k, nil
}

// KeyFromRequest returns the key from `Authorization: Bearer <key>`, else
// from `X-API-Key` (so another Authorization scheme, such as one a proxy
// adds, does not hide it), or "".
func KeyFromRequest(r *http.Request) string {
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(tok)
	}
	return strings.TrimSpace(r.Header.Get("X-API-Key"))
}
