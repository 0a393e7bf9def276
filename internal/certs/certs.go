// Package certs keeps the HTTPS listener's certificate, reloadable from
// its files while serving (SIGHUP): renewed certificates are picked up by
// new connections without a restart, and a bad pair keeps the old one.
package certs

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// Store holds the current certificate pair loaded from CertFile and KeyFile.
type Store struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// Load reads the pair once; it fails if the files are missing or do not match.
func Load(certFile, keyFile string) (*Store, error) {
	s := &Store{certFile: certFile, keyFile: keyFile}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the files again. On error the current certificate stays.
func (s *Store) Reload() error {
	c, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return fmt.Errorf("certs: loading %s and %s: %w", s.certFile, s.keyFile, err)
	}
	s.cur.Store(&c)
	return nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (s *Store) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cur.Load(), nil
}

// TLSConfig is a server configuration serving the store's certificate,
// TLS 1.2 at least.
func (s *Store) TLSConfig() *tls.Config {
	return &tls.Config{GetCertificate: s.GetCertificate, MinVersion: tls.VersionTLS12}
}
