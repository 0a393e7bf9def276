package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/beacongate/beacongate/ingest"
	"github.com/beacongate/beacongate/ingest/event"
	"github.com/beacongate/beacongate/ingest/form"
	"github.com/beacongate/beacongate/internal/kafka/embedded"
	"github.com/beacongate/beacongate/internal/kafka/producer"
	"github.com/beacongate/beacongate/internal/kafka/spool"
	"github.com/beacongate/beacongate/shard"
)

// envPrefix: every flag can also be set from the environment, e.g.
// -kafka.brokers from BEACONGATE_KAFKA_BROKERS. The command line wins.
const envPrefix = "BEACONGATE_"

// options is everything the command line configures.
type options struct {
	httpListen  string
	adminListen string
	adminToken  string
	httpsListen string
	httpsCert   string
	httpsKey    string
	gatewayID   string
	logLevel    string
	checkConfig bool
	version     bool

	kafkaBrokers  string
	kafkaSettings kvFlag
	embedded      embedded.Config
	dlqTopic      string
	dlqMaxBytes   int
	spool         spool.Config

	ingest   ingest.Config
	producer producer.Config

	shutdownDrain   time.Duration
	shutdownTimeout time.Duration
	startGrace      time.Duration
}

// kvFlag is a repeatable key=value flag.
type kvFlag map[string]string

func (kv kvFlag) String() string {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(k + "=" + kv[k])
	}
	return b.String()
}

// Set takes one key=value, or several separated by ';' (how the
// environment variable carries them).
func (kv kvFlag) Set(s string) error {
	for _, item := range strings.Split(s, ";") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("want key=value, got %q", item)
		}
		kv[strings.TrimSpace(k)] = v
	}
	return nil
}

// siteFlag is sid=key,sid2=,... into a map (keys masked when printed).
type siteFlag struct{ m *map[string]string }

func (f siteFlag) String() string {
	if f.m == nil || len(*f.m) == 0 {
		return ""
	}
	sids := make([]string, 0, len(*f.m))
	for sid := range *f.m {
		sids = append(sids, sid+"=***")
	}
	sort.Strings(sids)
	return strings.Join(sids, ",")
}

func (f siteFlag) Set(s string) error {
	m := map[string]string{}
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		sid, key, _ := strings.Cut(item, "=")
		if sid == "" {
			return fmt.Errorf("want sid=key, got %q", item)
		}
		m[sid] = key
	}
	*f.m = m
	return nil
}

// listFlag is a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	*l = (*l)[:0]
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}

func newFlagSet(o *options, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("beacongate", flag.ContinueOnError)
	fs.SetOutput(out)
	host, _ := os.Hostname()

	fs.StringVar(&o.httpListen, "http.listen", ":8080", "address of the public HTTP listener (beacons, /healthz, /readyz)")
	fs.StringVar(&o.adminListen, "admin.listen", "127.0.0.1:9100", "address of the admin listener (/metrics, /debug/pprof/); keep it private")
	fs.StringVar(&o.adminToken, "admin.token", "", "bearer token required on /metrics and /debug/pprof/ (set it from BEACONGATE_ADMIN_TOKEN, not the command line)")
	fs.StringVar(&o.httpsListen, "https.listen", "", "address of an HTTPS listener next to the HTTP one (e.g. :8443); needs -https.cert and -https.key, reloaded on SIGHUP")
	fs.StringVar(&o.httpsCert, "https.cert", "", "PEM certificate (chain) of the HTTPS listener")
	fs.StringVar(&o.httpsKey, "https.key", "", "PEM private key of the HTTPS listener")
	fs.StringVar(&o.gatewayID, "gateway.id", host, "this instance's id in every record (default: the host name)")
	fs.StringVar(&o.logLevel, "log.level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&o.checkConfig, "check-config", false, "validate the configuration, print it and exit")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")

	fs.StringVar(&o.kafkaBrokers, "kafka.brokers", "", "Kafka bootstrap servers, host:port[,host:port]; empty starts the embedded development broker")
	fs.StringVar(&o.producer.Topic, "kafka.topic", "beacons", "topic that receives every record")
	o.kafkaSettings = kvFlag{}
	fs.Var(o.kafkaSettings, "kafka.config", "librdkafka property key=value, repeatable; overrides the gateway's defaults (e.g. linger.ms=10, batch.size=1000000)")
	sec := &o.producer.Security
	fs.BoolVar(&sec.TLS, "kafka.tls", false, "connect to Kafka over TLS (certificate verification on)")
	fs.StringVar(&sec.CAFile, "kafka.tls.ca", "", "PEM CA file for Kafka's certificates (empty: the system's CAs)")
	fs.StringVar(&sec.CertFile, "kafka.tls.cert", "", "client certificate for mutual TLS (with -kafka.tls.key)")
	fs.StringVar(&sec.KeyFile, "kafka.tls.key", "", "client key for mutual TLS")
	fs.BoolVar(&sec.InsecureSkipVerify, "kafka.tls.insecure-skip-verify", false, "DANGEROUS: do not verify Kafka's certificate (tests only)")
	fs.StringVar(&sec.SASLMechanism, "kafka.sasl.mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: no SASL)")
	fs.StringVar(&sec.Username, "kafka.sasl.username", "", "SASL user")
	fs.StringVar(&sec.Password, "kafka.sasl.password", "", "SASL password (set BEACONGATE_KAFKA_SASL_PASSWORD, not the command line)")
	fs.Float64Var(&o.producer.HighWater, "kafka.high-water", 0.8, "fraction of the producer queue above which /readyz answers 503")
	fs.IntVar(&o.producer.LatencySampleEvery, "kafka.latency-sample", 64, "measure delivery latency on one record in this many (negative: off)")
	fs.DurationVar(&o.producer.StatsInterval, "kafka.stats-interval", time.Second, "how often librdkafka statistics update the metrics and broker readiness")

	fs.StringVar(&o.dlqTopic, "kafka.dlq-topic", "", "dead-letter topic for events that cannot become a record (raw bytes, reason in headers); empty: off")
	fs.IntVar(&o.dlqMaxBytes, "kafka.dlq-max-bytes", 64<<10, "dead letters are cut to this many bytes")
	fs.IntVar(&o.ingest.MaxDeadLettersPerRequest, "kafka.dlq-max-per-request", 10, "dead letters one request sends one by one; the rest are counted and summarised in one holding the body")
	fs.StringVar(&o.spool.Dir, "spool.dir", "./data/spool", "disk spool for records Kafka cannot take now (replayed in order later and at start-up); empty: off, a full producer queue is a 503")
	fs.Int64Var(&o.spool.MaxBytes, "spool.max-bytes", 1<<30, "largest spool; past it requests get 503")
	fs.Int64Var(&o.spool.SegmentBytes, "spool.segment-bytes", 0, "spool segment file size (0: 64 MiB, or -spool.max-bytes if smaller)")
	fs.Var((*listFlag)(&o.ingest.AckRoutes), "ack.routes", "routes answered only once their records are in Kafka or fsynced in the spool, without X-Beacon-Ack: comma-separated pixel, beacon, batch")
	fs.DurationVar(&o.ingest.AckTimeout, "ack.timeout", 10*time.Second, "longest wait of an acknowledged request (503 past it)")

	fs.StringVar(&o.embedded.Listen, "embedded.listen", "127.0.0.1:9092", "listen address of the embedded development broker")
	fs.StringVar(&o.embedded.DataDir, "embedded.data-dir", "./data/kafka", "data directory of the embedded development broker (\"\" keeps it in memory)")
	fs.IntVar(&o.embedded.Partitions, "embedded.partitions", 16, "partitions of the topic the embedded broker creates")

	fs.StringVar(&o.ingest.Shard.Sources, "shard.key", shard.DefaultSources, "ordered shard-key sources: query:NAME, json:NAME, header:NAME, cookie:NAME, ip")
	fs.StringVar(&o.ingest.Shard.Prefix, "shard.prefix", "", "optional source of a site/tenant prefix for the key, e.g. query:sid")
	fs.IntVar(&o.ingest.Shard.MaxKeyBytes, "shard.max-key-bytes", shard.DefaultMaxKeyBytes, "longest shard key; longer keys are cut")
	fs.Float64Var(&o.ingest.Shard.HotKeyRate, "shard.hot-key-rate", 0, "records per second of one key, per gateway, above which its records are overflow: marked and spread over the partitions (docs/hotkeys.md); 0: off")
	fs.IntVar(&o.ingest.Shard.HotKeyBurst, "shard.hot-key-burst", 0, "records a key may send at once before -shard.hot-key-rate counts; 0: one second of the rate")

	fs.IntVar(&o.ingest.MaxBodyBytes, "http.max-body-bytes", 1<<20, "largest request body (413 above)")
	fs.IntVar(&o.ingest.MaxHeaderBytes, "http.max-header-bytes", 16<<10, "largest request line plus headers (431 above)")
	fs.IntVar(&o.ingest.MaxQueryBytes, "http.max-query-bytes", 8<<10, "longest query string (414 above)")
	fs.DurationVar(&o.ingest.ReadTimeout, "http.read-timeout", 10*time.Second, "time to read one request")
	fs.DurationVar(&o.ingest.WriteTimeout, "http.write-timeout", 10*time.Second, "time to write one response")
	fs.DurationVar(&o.ingest.IdleTimeout, "http.idle-timeout", 60*time.Second, "idle keep-alive connections are closed after this")
	fs.Var((*listFlag)(&o.ingest.CORSOrigins), "http.cors-origins", "comma-separated origins allowed by CORS; empty or * = any origin, no credentials")
	fs.Var((*listFlag)(&o.ingest.TrustedProxies), "http.trusted-proxies", "CIDRs of proxies whose -http.client-ip-header is believed (walked from the right); empty: the socket address is the client IP")
	fs.StringVar(&o.ingest.ClientIPHeader, "http.client-ip-header", "X-Forwarded-For", "the one header believed from trusted proxies: X-Forwarded-For, or Forwarded or X-Real-IP when your proxy overwrites it")
	fs.Float64Var(&o.ingest.RateLimitPerIP, "http.rate-per-ip", 0, "requests per second per client IP (IPv6: per /64), 429 past it; 0: off")
	fs.IntVar(&o.ingest.RateBurstPerIP, "http.rate-burst-per-ip", 0, "burst of the per-IP limit (0: one second's worth)")
	fs.Float64Var(&o.ingest.RateLimitPerSite, "http.rate-per-site", 0, "requests per second per site (sid; a Snowplow tracker's GET: aid), 429 past it; 0: off")
	fs.IntVar(&o.ingest.RateBurstPerSite, "http.rate-burst-per-site", 0, "burst of the per-site limit (0: one second's worth)")
	fs.Var(siteFlag{&o.ingest.Sites}, "http.sites", "site allow-list and write keys: sid=key,sid2= (empty key: no key needed); unknown sites get 403")
	fs.IntVar(&o.ingest.MaxInflatedBytes, "http.max-inflated-bytes", 0, "largest gzip/deflate body once inflated, 413 past it (0: 4 x -http.max-body-bytes)")
	fs.IntVar(&o.ingest.MaxConnsPerIP, "http.max-conns-per-ip", 0, "most concurrent connections per IPv4 peer (0: off)")
	fs.IntVar(&o.ingest.MaxInflightBytes, "http.max-inflight-bytes", 0, "memory budget of request bodies and inflate buffers in flight, 503 memory_budget past it (0: 256 MiB, or one maximal request if more)")
	fs.IntVar(&o.ingest.Concurrency, "http.concurrency", 10_000, "most connections served at once, idle keep-alive ones included (503 too_many_connections past it)")
	fs.BoolVar(&o.ingest.CORSCredentials, "http.cors-credentials", false, "allow credentialed CORS (cookies) from the -http.cors-origins list (which must then be explicit)")
	fs.Var((*listFlag)(&o.ingest.RedirectHosts), "http.redirect-hosts", "hosts the click redirect /r may send browsers to: example.com, or .example.com with subdomains; empty refuses all")
	fs.Var((*listFlag)(&o.ingest.SnowplowPaths), "snowplow.paths", "more paths answered as the Snowplow tracker endpoint /com.snowplowanalytics.snowplow/tp2 (a tracker's custom postPath)")
	fs.BoolVar(&o.ingest.Demo, "demo", false, "serve the browser snippet's demo page at /demo")
	fs.StringVar(&o.ingest.IdentityCookie, "identity.cookie", "", "name of the gateway's own first-party browser id cookie (network_user_id); empty: off")
	fs.StringVar(&o.ingest.IdentityDomain, "identity.domain", "", "Domain attribute of the identity cookie (empty: the gateway's host)")
	fs.DurationVar(&o.ingest.IdentityMaxAge, "identity.max-age", 365*24*time.Hour, "lifetime of the identity cookie, renewed on every request")
	fs.StringVar(&o.ingest.OptOutCookie, "privacy.opt-out-cookie", "bg_optout", "cookie whose presence (any value but 0) records a request without identifiers and IP; - turns it off (X-Beacon-Opt-Out: 1 always works)")
	fs.BoolVar(&o.ingest.HonorDNT, "privacy.honor-dnt", false, "treat DNT: 1 as an opt-out")
	fs.BoolVar(&o.ingest.HonorGPC, "privacy.honor-gpc", false, "treat Sec-GPC: 1 (Global Privacy Control) as an opt-out")
	fs.Var((*listFlag)(&o.ingest.IDParams), "privacy.id-params", "parameters and top-level JSON members removed on opt-out (default uid,aid,user_id,anonymous_id)")
	fs.BoolVar(&o.ingest.AnonymizeIP, "privacy.anonymize-ip", false, "zero the last octet of IPv4 and the last 80 bits of IPv6 client addresses")
	fs.IntVar(&o.ingest.Form.MaxParams, "http.max-params", form.DefaultMaxParams, "most query plus form parameters in one request (400 above)")
	fs.IntVar(&o.ingest.Event.MaxEventBytes, "event.max-bytes", event.DefaultMaxEventBytes, "largest JSON event")
	fs.IntVar(&o.ingest.Event.MaxDepth, "event.max-depth", event.DefaultMaxDepth, "deepest nesting inside a JSON event")
	fs.IntVar(&o.ingest.Event.MaxEvents, "batch.max-events", event.DefaultMaxEvents, "most events in one POST /batch")

	fs.DurationVar(&o.shutdownDrain, "shutdown.drain", 5*time.Second, "on SIGTERM, time between /readyz turning 503 and closing the listener, so load balancers move away")
	fs.DurationVar(&o.shutdownTimeout, "shutdown.timeout", 15*time.Second, "on SIGTERM, after the drain period: longest wait for in-flight requests, replaying the spool into Kafka and delivering the producer's queue (what is left goes back to the spool)")
	fs.DurationVar(&o.startGrace, "kafka.start-grace", 5*time.Second, "after start, how long records go to the producer's queue while it connects before a Kafka that is still not ready sends them to the spool")
	return fs
}

// parseFlags parses args over the environment: a flag not given on the
// command line takes BEACONGATE_<NAME> (dots and dashes as underscores).
func parseFlags(args []string, getenv func(string) string, out io.Writer) (*options, *flag.FlagSet, error) {
	o := &options{}
	fs := newFlagSet(o, out)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected argument %q (flags start with -)", fs.Arg(0))
	}
	onCmdLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCmdLine[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || onCmdLine[f.Name] {
			return
		}
		name := envName(f.Name)
		if v := getenv(name); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("invalid value %q for %s: %w", v, name, e)
			}
		}
	})
	if err != nil {
		return nil, nil, err
	}
	o.ingest.GatewayID = o.gatewayID
	o.producer.ClientID = "beacongate-" + o.gatewayID
	o.producer.Settings = o.kafkaSettings
	return o, fs, nil
}

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(flagName))
}

// validate checks every component's configuration, so a bad one fails at
// start with one line instead of after the broker started.
func (o *options) validate() error {
	if _, err := parseLevel(o.logLevel); err != nil {
		return err
	}
	if o.startGrace < 0 {
		return fmt.Errorf("kafka.start-grace must be >= 0 (got %v)", o.startGrace)
	}
	if o.shutdownDrain < 0 || o.shutdownTimeout <= 0 {
		return fmt.Errorf("shutdown.drain must be >= 0 and shutdown.timeout > 0 (got %v, %v)", o.shutdownDrain, o.shutdownTimeout)
	}
	if (o.httpsListen != "") != (o.httpsCert != "" && o.httpsKey != "") {
		return fmt.Errorf("https.listen needs -https.cert and -https.key, and they need -https.listen")
	}
	if o.httpsListen != "" && (o.httpsListen == o.httpListen || o.httpsListen == o.adminListen) {
		return fmt.Errorf("https.listen %q must differ from http.listen and admin.listen", o.httpsListen)
	}
	if o.httpListen == o.adminListen {
		return fmt.Errorf("http.listen and admin.listen are both %q: the admin surface must not share the public port", o.httpListen)
	}
	if err := o.ingest.Validate(); err != nil {
		return err
	}
	if err := o.producer.Validate(); err != nil {
		return err
	}
	if o.kafkaBrokers == "" {
		if err := o.embedded.Validate(); err != nil {
			return err
		}
	}
	if o.spool.Dir != "" {
		if err := o.spool.Validate(); err != nil {
			return err
		}
	}
	if o.dlqTopic != "" && o.dlqTopic == o.producer.Topic {
		return fmt.Errorf("kafka.dlq-topic %q is the beacon topic: dead letters would mix with records", o.dlqTopic)
	}
	return nil
}

// errHelp is returned by parseFlags for -h and -help (usage was printed).
var errHelp = flag.ErrHelp

// printConfig prints the effective value of every flag, one per line, as
// -check-config output. Secrets in -kafka.config are masked.
func printConfig(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		v := f.Value.String()
		if kv, ok := f.Value.(kvFlag); ok {
			masked := kvFlag{}
			for k, val := range kv {
				if strings.Contains(k, "password") || strings.Contains(k, "secret") || strings.Contains(k, "key.pem") {
					val = "***"
				}
				masked[k] = val
			}
			v = masked.String()
		}
		if (f.Name == "admin.token" || f.Name == "kafka.sasl.password") && v != "" {
			v = "***"
		}
		fmt.Fprintf(w, "-%s=%s\n", f.Name, v)
	})
}
