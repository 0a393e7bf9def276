package producer_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/beacongate/beacongate/internal/kafka/producer"
	"github.com/beacongate/beacongate/internal/kafkatest"
)

// pki is a throw-away PKI in a test's temporary directory: a CA, a server
// certificate for 127.0.0.1 signed by it, a client certificate for mutual
// TLS, and an unrelated CA that must not be trusted.
type pki struct {
	caFile, otherCAFile   string
	clientCert, clientKey string
	caPool                *x509.CertPool
	server                tls.Certificate // IP SAN 127.0.0.1
	serverWrongName       tls.Certificate // DNS SAN kafka.invalid only
	client                tls.Certificate
}

type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	ca := newCA(t, "beacongate test CA")
	other := newCA(t, "some other CA")
	p := &pki{
		caFile:      filepath.Join(dir, "ca.pem"),
		otherCAFile: filepath.Join(dir, "other-ca.pem"),
		clientCert:  filepath.Join(dir, "client.pem"),
		clientKey:   filepath.Join(dir, "client-key.pem"),
		caPool:      x509.NewCertPool(),
	}
	p.caPool.AddCert(ca.cert)
	writePEM(t, p.caFile, "CERTIFICATE", ca.cert.Raw)
	writePEM(t, p.otherCAFile, "CERTIFICATE", other.cert.Raw)
	p.server = ca.leaf(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	p.serverWrongName = ca.leaf(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kafka.invalid"},
		DNSNames:    []string{"kafka.invalid"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	p.client = ca.leaf(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "gateway"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	writePEM(t, p.clientCert, "CERTIFICATE", p.client.Certificate[0])
	der, err := x509.MarshalPKCS8PrivateKey(p.client.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, p.clientKey, "PRIVATE KEY", der)
	return p
}

var serial int64

func newCA(t *testing.T, name string) issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return issuer{cert, key}
}

func (ca issuer) leaf(t *testing.T, tmpl *x509.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl.SerialNumber = big.NewInt(serial)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startSecureBroker starts a one-broker kfake cluster with topic
// "beacons" behind TLS (and SASL when users are given as
// mechanism, user, password triples) and returns its address.
func startSecureBroker(t *testing.T, tc *tls.Config, users ...[3]string) string {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(4, "beacons"), kfake.TLS(tc)}
	if len(users) > 0 {
		opts = append(opts, kfake.EnableSASL())
		for _, u := range users {
			opts = append(opts, kfake.Superuser(u[0], u[1], u[2]))
		}
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// waitReady polls Ready until want(ok, reason) holds or 15 s pass, and
// returns the last reason.
func waitReady(t *testing.T, p *producer.Producer, what string, want func(ok bool, reason string) bool) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, reason := p.Ready()
		if want(ok, reason) {
			return reason
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not reached within 15s: ready=%t reason=%q", what, ok, reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func isReady(ok bool, _ string) bool { return ok }

func TestSecureProduceDelivers(t *testing.T) {
	k := newPKI(t)
	users := [][3]string{
		{"PLAIN", "gw", "secret"},
		{"SCRAM-SHA-256", "gw", "secret"},
		{"SCRAM-SHA-512", "gw", "secret"},
	}
	for _, tc := range []struct {
		name string
		mech string
		mtls bool
		sasl sasl.Mechanism
	}{
		{name: "TLS"},
		{name: "mutual TLS", mtls: true},
		{name: "TLS+PLAIN", mech: "PLAIN", sasl: plain.Auth{User: "gw", Pass: "secret"}.AsMechanism()},
		{name: "TLS+SCRAM-SHA-256", mech: "SCRAM-SHA-256", sasl: scram.Auth{User: "gw", Pass: "secret"}.AsSha256Mechanism()},
		{name: "TLS+SCRAM-SHA-512", mech: "scram-sha-512", sasl: scram.Auth{User: "gw", Pass: "secret"}.AsSha512Mechanism()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serverTLS := &tls.Config{Certificates: []tls.Certificate{k.server}, MinVersion: tls.VersionTLS12}
			clientTLS := &tls.Config{RootCAs: k.caPool, MinVersion: tls.VersionTLS12}
			sec := producer.Security{TLS: true, CAFile: k.caFile}
			if tc.mtls {
				serverTLS.ClientAuth = tls.RequireAndVerifyClientCert
				serverTLS.ClientCAs = k.caPool
				clientTLS.Certificates = []tls.Certificate{k.client}
				sec.CertFile, sec.KeyFile = k.clientCert, k.clientKey
			}
			var brokerUsers [][3]string
			if tc.mech != "" {
				brokerUsers = users
				sec.SASLMechanism, sec.Username, sec.Password = tc.mech, "gw", "secret"
			}
			addr := startSecureBroker(t, serverTLS, brokerUsers...)

			p, err := producer.New(producer.Config{Brokers: addr, StatsInterval: 100 * time.Millisecond, Security: sec}, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			waitReady(t, p, "readiness", isReady)
			const n = 200
			for i := 0; i < n; i++ {
				if err := p.Produce([]byte("user-"+strconv.Itoa(i%7)), []byte(fmt.Sprintf("rec-%04d", i))); err != nil {
					t.Fatalf("produce %d: %v", i, err)
				}
			}
			if left := p.Flush(20 * time.Second); left != 0 {
				t.Fatalf("%d records left after flush", left)
			}

			opts := []kgo.Opt{kgo.DialTLSConfig(clientTLS)}
			if tc.sasl != nil {
				opts = append(opts, kgo.SASL(tc.sasl))
			}
			recs := kafkatest.Consume(t, addr, "beacons", n, 20*time.Second, opts...)
			seen := map[string]bool{}
			for _, r := range recs {
				seen[string(r.Value)] = true
			}
			for i := 0; i < n; i++ {
				if v := fmt.Sprintf("rec-%04d", i); !seen[v] {
					t.Fatalf("record %s not read back (%d records read)", v, len(recs))
				}
			}
		})
	}
}

// TestWrongPasswordIsNotReady: wrong credentials must leave the producer
// running but not ready, with the cause in Ready's reason, a throttled log
// and no password anywhere in the log.
func TestWrongPasswordIsNotReady(t *testing.T) {
	k := newPKI(t)
	addr := startSecureBroker(t, &tls.Config{Certificates: []tls.Certificate{k.server}},
		[3]string{"SCRAM-SHA-256", "gw", "secret"})
	core, logs := observer.New(zapcore.DebugLevel)
	const password = "wrong-password-42"
	p, err := producer.New(producer.Config{Brokers: addr, StatsInterval: 100 * time.Millisecond, Security: producer.Security{
		TLS: true, CAFile: k.caFile, SASLMechanism: "SCRAM-SHA-256", Username: "gw", Password: password,
	}}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			for _, e := range logs.All() {
				t.Logf("log: %s %s %v", e.Level, e.Message, e.ContextMap())
			}
		}
	}()
	start := time.Now()
	reason := waitReady(t, p, "an authentication reason", func(ok bool, reason string) bool {
		return !ok && strings.Contains(strings.ToLower(reason), "authentication")
	})
	t.Logf("not ready after %v: %s", time.Since(start).Round(time.Millisecond), reason)
	if err := p.Produce([]byte("k"), []byte("v")); err != nil {
		t.Fatalf("Produce with the broker unreachable = %v, want it enqueued", err)
	}
	// Let librdkafka retry a few times: readiness must stay false and the
	// log must not repeat itself every reconnect.
	time.Sleep(2 * time.Second)
	if ok, reason := p.Ready(); ok {
		t.Fatalf("ready with a wrong password (reason %q)", reason)
	}
	p.Purge(time.Second) // no failure handler: the record is counted lost
	p.Close()
	var authLines int
	for _, e := range logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += fmt.Sprintf(" %s=%v", k, v)
		}
		if strings.Contains(line, password) {
			t.Errorf("log line leaks the password: %s", line)
		}
		if e.Level >= zapcore.WarnLevel && strings.Contains(line, "authentication") {
			authLines++
		}
	}
	// librdkafka retries every second or so; throttled, the client error
	// and librdkafka's own FAIL line are each written once per 10 s.
	if authLines == 0 || authLines > 4 {
		t.Errorf("%d warning/error log lines about authentication, want 1 to 4 (throttled)", authLines)
	}
}

func TestUntrustedCertificateIsNotReady(t *testing.T) {
	k := newPKI(t)
	for _, tc := range []struct {
		name   string
		server tls.Certificate
		sec    producer.Security
		ready  bool
	}{
		{name: "other CA", server: k.server, sec: producer.Security{TLS: true, CAFile: k.otherCAFile}},
		{name: "wrong host name", server: k.serverWrongName, sec: producer.Security{TLS: true, CAFile: k.caFile}},
		{name: "system CAs", server: k.server, sec: producer.Security{TLS: true}},
		{name: "other CA, verification off", server: k.server, ready: true,
			sec: producer.Security{TLS: true, CAFile: k.otherCAFile, InsecureSkipVerify: true}},
		{name: "wrong host name, verification off", server: k.serverWrongName, ready: true,
			sec: producer.Security{TLS: true, CAFile: k.caFile, InsecureSkipVerify: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startSecureBroker(t, &tls.Config{Certificates: []tls.Certificate{tc.server}})
			p, err := producer.New(producer.Config{Brokers: addr, StatsInterval: 100 * time.Millisecond, Security: tc.sec}, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if tc.ready {
				waitReady(t, p, "readiness", isReady)
				return
			}
			start := time.Now()
			reason := waitReady(t, p, "an SSL reason", func(ok bool, reason string) bool {
				return !ok && (strings.Contains(reason, "SSL") || strings.Contains(reason, "certificate"))
			})
			t.Logf("not ready after %v: %s", time.Since(start).Round(time.Millisecond), reason)
		})
	}
}

func TestMutualTLSWithoutClientCertIsNotReady(t *testing.T) {
	k := newPKI(t)
	addr := startSecureBroker(t, &tls.Config{Certificates: []tls.Certificate{k.server},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: k.caPool})
	p, err := producer.New(producer.Config{Brokers: addr, StatsInterval: 100 * time.Millisecond,
		Security: producer.Security{TLS: true, CAFile: k.caFile}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	reason := waitReady(t, p, "not ready", func(ok bool, reason string) bool {
		return !ok && strings.Contains(reason, "last error")
	})
	t.Logf("reason: %s", reason)
}

func TestSecurityValidate(t *testing.T) {
	k := newPKI(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		sec  producer.Security
		want string
	}{
		{producer.Security{TLS: true, CertFile: k.clientCert}, "both a client certificate and its key"},
		{producer.Security{TLS: true, KeyFile: k.clientKey}, "both a client certificate and its key"},
		{producer.Security{TLS: true, CAFile: missing}, "cannot read the TLS CA file"},
		{producer.Security{TLS: true, CertFile: missing, KeyFile: k.clientKey}, "cannot read the TLS client certificate"},
		{producer.Security{SASLMechanism: "GSSAPI", Username: "gw"}, "unknown SASL mechanism"},
		{producer.Security{SASLMechanism: "SCRAM-SHA-256"}, "needs a username"},
		{producer.Security{Username: "gw", Password: "x"}, "without a SASL mechanism"},
		{producer.Security{CAFile: k.caFile}, "TLS is off"},
	} {
		err := producer.Config{Security: tc.sec}.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%v) = %v, want an error containing %q", tc.sec, err, tc.want)
		}
	}
	err := producer.Config{Security: producer.Security{TLS: true, CAFile: missing, SASLMechanism: "X"}}.Validate()
	if !errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "unknown SASL mechanism") {
		t.Errorf("Validate with two problems = %q, want both on one line, wrapping fs.ErrNotExist", err)
	}
	for _, ok := range []producer.Security{
		{TLS: true},
		{TLS: true, CAFile: k.caFile, CertFile: k.clientCert, KeyFile: k.clientKey},
		{SASLMechanism: "plain", Username: "gw", Password: "x"},
		{TLS: true, InsecureSkipVerify: true, SASLMechanism: "SCRAM-SHA-512", Username: "gw", Password: "x"},
	} {
		if err := (producer.Config{Security: ok}).Validate(); err != nil {
			t.Errorf("Validate(%v) = %v, want nil", ok, err)
		}
	}
}

func TestSecurityDoesNotPrintPassword(t *testing.T) {
	c := producer.Config{Security: producer.Security{SASLMechanism: "PLAIN", Username: "gw", Password: "hunter2"}}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, c); strings.Contains(s, "hunter2") {
			t.Errorf("%s of Config leaks the password: %s", verb, s)
		}
		if s := fmt.Sprintf(verb, &c); strings.Contains(s, "hunter2") {
			t.Errorf("%s of *Config leaks the password: %s", verb, s)
		}
	}
}
