package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/certs"
	"github.com/beacongate/beacongate/internal/kafka/embedded"
	"github.com/beacongate/beacongate/internal/kafkatest"
)

// TestHTTPSReloadAndAdminToken: the HTTPS listener serves beacons, picks
// up a renewed certificate on SIGHUP without a restart, and the admin
// surface asks for its bearer token.
func TestHTTPSReloadAndAdminToken(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	newPair := func() *x509.CertPool {
		c, k, err := certs.SelfSigned([]string{"127.0.0.1"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(certFile, c, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, k, 0o600); err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(c)
		return pool
	}
	pool1 := newPair()
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Topics: []string{"beacons"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	httpsAddr := freeAddr(t)
	g := startGateway(t, "-kafka.brokers", b.Addr(), "-https.listen", httpsAddr, "-https.cert", certFile, "-https.key", keyFile,
		"-admin.token", "s3cret")

	get := func(pool *x509.CertPool) (int, error) {
		cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
		resp, err := cl.Get("https://" + httpsAddr + "/i?uid=tls")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if st, err := get(pool1); err != nil || st != 200 {
		t.Fatalf("HTTPS pixel: %d %v", st, err)
	}
	pool2 := newPair()
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, "the renewed certificate", 10*time.Second, func() bool {
		st, err := get(pool2)
		return err == nil && st == 200
	})
	if _, err := get(pool1); err == nil {
		t.Fatalf("the old certificate is still served after SIGHUP")
	}

	for _, c := range []struct {
		auth string
		want int
	}{{"", 401}, {"Bearer nope", 401}, {"Bearer s3cret", 200}} {
		req, _ := http.NewRequest("GET", "http://"+g.admin+"/metrics", nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("/metrics with %q: %d, want %d", c.auth, resp.StatusCode, c.want)
		}
	}
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestHTTPSBadCertificateFailsFirst: a certificate that cannot be loaded
// stops the start before the development broker starts or the spool is
// created, with a line naming the files.
func TestHTTPSBadCertificateFailsFirst(t *testing.T) {
	dir := t.TempDir()
	spoolDir, dataDir := filepath.Join(dir, "spool"), filepath.Join(dir, "kafka")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kafkatest.GatewayBinary(t),
		"-http.listen", freeAddr(t), "-admin.listen", freeAddr(t),
		"-https.listen", freeAddr(t), "-https.cert", filepath.Join(dir, "missing.pem"), "-https.key", filepath.Join(dir, "missing.key"),
		"-spool.dir", spoolDir, "-embedded.data-dir", dataDir, "-embedded.listen", freeAddr(t))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("want a failed start, got %v:\n%s", err, out)
	}
	if !strings.Contains(string(out), "missing.pem") {
		t.Errorf("the failure does not name the certificate file:\n%s", out)
	}
	for _, d := range []string{spoolDir, dataDir} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was created before the certificate was checked (%v):\n%s", d, err, out)
		}
	}
}
