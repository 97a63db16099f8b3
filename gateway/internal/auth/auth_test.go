package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"strings"
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
