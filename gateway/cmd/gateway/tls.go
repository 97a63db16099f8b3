package main

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// certificate is the TLS certificate, replaced on SIGHUP.
type certificate struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// newCertificate loads SLUICE_TLS_CERT and SLUICE_TLS_KEY, or returns nil
// when they are not set (plain HTTP).
func newCertificate(s settings) (*certificate, error) {
	if s.tlsCert == "" {
		return nil, nil
	}
	return loadCertificate(s.tlsCert, s.tlsKey)
}

func loadCertificate(certFile, keyFile string) (*certificate, error) {
	c := &certificate{certFile: certFile, keyFile: keyFile}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certificate) load() error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("SLUICE_TLS_CERT/SLUICE_TLS_KEY: %w", err)
	}
	c.cur.Store(&cert)
	return nil
}

func (c *certificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }

// config is the ingest server's TLS configuration: each handshake takes the
// certificate loaded last.
func (c *certificate) config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.get}
}
