package producer

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Security says how the producer authenticates to the brokers and
// encrypts the connection. Its zero value is plaintext without SASL (the
// behaviour before it existed), which suits a broker on the same host or a
// private network only.
//
// It is mapped onto librdkafka properties before Config.Settings are
// applied, so a -kafka.config property (security.protocol, ssl.*, sasl.*)
// overrides the value derived from these fields.
type Security struct {
	// TLS encrypts the connection and verifies the brokers' certificates:
	// security.protocol ssl, or sasl_ssl together with SASLMechanism.
	TLS bool
	// CAFile is a PEM file of the CA certificates that sign the brokers'
	// certificates (ssl.ca.location). Empty uses the system's CAs.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and its private
	// key for mutual TLS (ssl.certificate.location, ssl.key.location):
	// both or neither. An encrypted key needs -kafka.config
	// ssl.key.password=....
	CertFile, KeyFile string
	// InsecureSkipVerify turns OFF the verification of the brokers'
	// certificates and host names (enable.ssl.certificate.verification=false).
	//
	// DANGER: the connection is then encrypted but not authenticated: anyone
	// who can intercept it can impersonate the broker and read every record
	// and the SASL credentials. Verification is on by default; use this
	// only to debug a certificate problem, never in production.
	InsecureSkipVerify bool
	// SASLMechanism is "" (no SASL), "PLAIN", "SCRAM-SHA-256" or
	// "SCRAM-SHA-512" (sasl.mechanisms; case-insensitive). PLAIN sends the
	// password as is: use it only together with TLS.
	SASLMechanism string
	// Username and Password are the SASL credentials (sasl.username,
	// sasl.password). The password is never printed: String masks it.
	Username, Password string
}

// saslMechanisms are the mechanisms librdkafka's bundled build supports
// with a username and password (GSSAPI and OAUTHBEARER need more than
// these fields, and stay available through Settings).
var saslMechanisms = map[string]bool{"PLAIN": true, "SCRAM-SHA-256": true, "SCRAM-SHA-512": true}

// String describes s with the password masked, so that a Config printed
// with %v or %+v (a start-up log, -check-config) does not leak it.
func (s Security) String() string {
	pw := ""
	if s.Password != "" {
		pw = "xxxxx"
	}
	return fmt.Sprintf("{TLS:%t CAFile:%q CertFile:%q KeyFile:%q InsecureSkipVerify:%t SASLMechanism:%q Username:%q Password:%s}",
		s.TLS, s.CAFile, s.CertFile, s.KeyFile, s.InsecureSkipVerify, s.SASLMechanism, s.Username, pw)
}

// GoString masks the password for %#v too.
func (s Security) GoString() string { return "producer.Security" + s.String() }

// protocol is librdkafka's security.protocol for s.
func (s Security) protocol() string {
	switch {
	case s.TLS && s.SASLMechanism != "":
		return "sasl_ssl"
	case s.TLS:
		return "ssl"
	case s.SASLMechanism != "":
		return "sasl_plaintext"
	}
	return "plaintext"
}

// validate reports every problem found, so that a start-up with several
// mistakes reports them all at once, on one line (the gateway fails at
// start with a one-line error).
func (s Security) validate() error {
	var errs []error
	mech := strings.ToUpper(s.SASLMechanism)
	switch {
	case mech != "" && !saslMechanisms[mech]:
		errs = append(errs, fmt.Errorf("producer: unknown SASL mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", s.SASLMechanism))
	case mech != "" && s.Username == "":
		errs = append(errs, fmt.Errorf("producer: SASL mechanism %s needs a username", mech))
	case mech == "" && (s.Username != "" || s.Password != ""):
		// Credentials without a mechanism would be silently ignored and the
		// gateway would connect unauthenticated.
		errs = append(errs, errors.New("producer: SASL username or password given without a SASL mechanism"))
	}
	if !s.TLS && (s.CAFile != "" || s.CertFile != "" || s.KeyFile != "" || s.InsecureSkipVerify) {
		// Same reason: TLS options without TLS would be silently ignored.
		errs = append(errs, errors.New("producer: TLS options (CA, certificate, key or insecure-skip-verify) given but TLS is off"))
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		errs = append(errs, fmt.Errorf("producer: mutual TLS needs both a client certificate and its key (certificate %q, key %q)", s.CertFile, s.KeyFile))
	}
	for _, f := range []struct{ what, path string }{
		{"CA file", s.CAFile}, {"client certificate", s.CertFile}, {"client key", s.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		// librdkafka would only say "ssl.ca.location failed" when the
		// producer is created; opening the file here names the file and
		// the cause (missing, permissions).
		fh, err := os.Open(f.path)
		if err != nil {
			errs = append(errs, fmt.Errorf("producer: cannot read the TLS %s: %w", f.what, err))
			continue
		}
		fh.Close()
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	args := make([]any, len(errs))
	for i, e := range errs {
		args[i] = e
	}
	// Multiple %w keep errors.Is/As working on each cause (errors.Join
	// would separate them with newlines).
	return fmt.Errorf(strings.TrimSuffix(strings.Repeat("%w; ", len(errs)), "; "), args...)
}

// properties are the librdkafka properties for s.
func (s Security) properties() map[string]string {
	m := map[string]string{"security.protocol": s.protocol()}
	if s.TLS {
		if s.CAFile != "" {
			m["ssl.ca.location"] = s.CAFile
		} else {
			// The bundled librdkafka links OpenSSL statically, whose
			// compiled-in CA path is the build machine's: "probe" makes it
			// look in the usual system locations instead.
			m["ssl.ca.location"] = "probe"
		}
		if s.CertFile != "" {
			m["ssl.certificate.location"] = s.CertFile
			m["ssl.key.location"] = s.KeyFile
		}
		if s.InsecureSkipVerify {
			m["enable.ssl.certificate.verification"] = "false"
			m["ssl.endpoint.identification.algorithm"] = "none"
		} else {
			// Check the broker's name (or IP address) against its
			// certificate, not only the CA signature: librdkafka's default
			// is https since 2.0, set here so it does not depend on the
			// version.
			m["enable.ssl.certificate.verification"] = "true"
			m["ssl.endpoint.identification.algorithm"] = "https"
		}
	}
	if s.SASLMechanism != "" {
		m["sasl.mechanisms"] = strings.ToUpper(s.SASLMechanism)
		m["sasl.username"] = s.Username
		m["sasl.password"] = s.Password
	}
	return m
}
