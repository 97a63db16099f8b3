package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestParseKeysAndAuthenticate(t *testing.T) {
	sum := sha256.Sum256([]byte("hashed-secret"))
	file := "# comment\n\nk1 acme\nk2 beta 100/s,burst=10 # trailing\nsha256:" + hex.EncodeToString(sum[:]) + " gamma\n"
	ks, err := ParseKeys(strings.NewReader(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := NewAuthenticator(ks)
	for _, tt := range []struct {
		header, value string
		want          Key
		err           error
	}{
		{"Authorization", "Bearer k1", Key{Tenant: "acme"}, nil},
		{"Authorization", "bearer k2", Key{Tenant: "beta", Policy: "100/s,burst=10"}, nil},
		{"X-API-Key", "hashed-secret", Key{Tenant: "gamma"}, nil},
		{"X-API-Key", "nope", Key{}, ErrUnknownKey},
		{"Authorization", "Basic k1", Key{}, ErrNoKey},
		{"", "", Key{}, ErrNoKey},
	} {
		r := httptest.NewRequest("POST", "/v1/events", nil)
		if tt.header != "" {
			r.Header.Set(tt.header, tt.value)
		}
		got, err := a.Authenticate(r)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("%s: %s -> %+v, %v; want %+v, %v", tt.header, tt.value, got, err, tt.want, tt.err)
		}
	}
}

// X-API-Key is read when Authorization holds another scheme; a Bearer
// token comes first.
func TestKeyFromRequest(t *testing.T) {
	for _, tt := range []struct{ authorization, apiKey, want string }{
		{"Basic dXNlcjpwdw==", "k1", "k1"},
		{"Bearer k2", "k1", "k2"},
		{"Bearer  k2 ", "", "k2"},
		{"Basic dXNlcjpwdw==", "", ""},
		{"", " k1 ", "k1"},
	} {
		r := httptest.NewRequest("POST", "/v1/events", nil)
		if tt.authorization != "" {
			r.Header.Set("Authorization", tt.authorization)
		}
		if tt.apiKey != "" {
			r.Header.Set("X-API-Key", tt.apiKey)
		}
		if got := KeyFromRequest(r); got != tt.want {
			t.Errorf("Authorization %q, X-API-Key %q: %q, want %q", tt.authorization, tt.apiKey, got, tt.want)
		}
	}
}

func TestParseKeysRejects(t *testing.T) {
	for _, file := range []string{
		"onlykey\n",
		"k t p extra\n",
		"k BadTenant\n",
		"sha256:zz t\n",
		"k a\nk b\n",
	} {
		if _, err := ParseKeys(strings.NewReader(file), nil); err == nil || !strings.Contains(err.Error(), "line") {
			t.Errorf("ParseKeys(%q) err = %v, want an error naming the line", file, err)
		}
	}
	_, err := ParseKeys(strings.NewReader("k t bad\n"), func(string) error { return errors.New("nope") })
	if err == nil {
		t.Error("policy validator not applied")
	}
}

func TestNoAuth(t *testing.T) {
	k, err := NoAuth().Authenticate(httptest.NewRequest("POST", "/", nil))
	if err != nil || k.Tenant != DefaultTenant {
		t.Errorf("got %+v, %v", k, err)
	}
}

// Keys replaced while requests are authenticated: each request sees one set
// or the other, never an error other than the unknown key (run with -race).
func TestReplaceWhileServing(t *testing.T) {
	one, _ := ParseKeys(strings.NewReader("k1 acme\n"), nil)
	two, _ := ParseKeys(strings.NewReader("k1 acme\nk2 beta\n"), nil)
	a := NewAuthenticator(one)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			r := httptest.NewRequest("POST", "/v1/events", nil)
			r.Header.Set("X-API-Key", "k1")
			for range 1000 {
				if k, err := a.Authenticate(r); err != nil || k.Tenant != "acme" {
					t.Errorf("k1 -> %+v, %v", k, err)
					return
				}
			}
		})
	}
	for i := range 1000 {
		a.Replace([]*Keys{one, two}[i%2])
	}
	wg.Wait()
}

func TestLoadKeysFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte("secret-1 acme\nsecret-2 Bad!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadKeysFile(path, nil)
	if err == nil || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("err = %v: want line 2 named and no key", err)
	}
	if _, err := LoadKeysFile(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Fatal("a missing file loaded")
	}
}
