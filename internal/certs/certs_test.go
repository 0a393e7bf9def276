package certs

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writePair(t *testing.T, dir string) {
	t.Helper()
	c, k, err := SelfSigned([]string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), c, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), k, 0o600); err != nil {
		t.Fatal(err)
	}
}

func serial(t *testing.T, s *Store) string {
	t.Helper()
	c, _ := s.GetCertificate(nil)
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.SerialNumber.String()
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	writePair(t, dir)
	s, err := Load(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	first := serial(t, s)
	writePair(t, dir)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	second := serial(t, s)
	if second == first {
		t.Fatalf("Reload kept the old certificate")
	}
	// A broken pair keeps serving the current certificate.
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil {
		t.Fatalf("Reload of a broken pair succeeded")
	}
	if serial(t, s) != second {
		t.Fatalf("a failed Reload replaced the certificate")
	}
	if _, err := Load(filepath.Join(dir, "nope.pem"), filepath.Join(dir, "key.pem")); err == nil {
		t.Fatalf("Load of a missing file succeeded")
	}
}
