package ingest

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/beacongate/beacongate/ingest/event"
	"github.com/beacongate/beacongate/ingest/form"
	"github.com/beacongate/beacongate/shard"
)

// Defaults of the memory bounds (budget.go, docs/security.md).
const (
	defaultMaxInflightBytes = 256 << 20
	defaultConcurrency      = 10_000
)

// Config configures the HTTP ingest server. Its zero value is usable:
// every field documents its default.
type Config struct {
	// GatewayID goes into every record's gateway_id. Default "beacongate".
	GatewayID string
	// MaxBodyBytes caps a request body; a larger one gets 413. Default 1 MiB.
	MaxBodyBytes int
	// MaxHeaderBytes caps the request line plus headers; larger gets 431.
	// Default 16 KiB.
	MaxHeaderBytes int
	// MaxQueryBytes caps the query string; a longer one gets 414. Default
	// 8 KiB. Must be below MaxHeaderBytes, which includes it.
	MaxQueryBytes int
	// ReadTimeout bounds reading one request, WriteTimeout writing one
	// response, IdleTimeout an idle keep-alive connection. Defaults 10s,
	// 10s, 60s.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// CORSOrigins lists the origins allowed to read responses (CORS). Empty
	// or "*" means any origin, answered with "Access-Control-Allow-Origin: *"
	// (no credentials).
	CORSOrigins []string
	// AckRoutes lists the routes ("pixel", "beacon", "batch") answered only
	// once their records are in Kafka or fsynced in the spool, without the
	// client asking (X-Beacon-Ack: kafka asks; X-Beacon-Ack: none opts out).
	// Default none: pixels and beacons stay asynchronous.
	AckRoutes []string
	// AckTimeout bounds an acknowledged request's wait; past it the answer
	// is 503 (the records may still arrive: at-least-once). Default 10s.
	AckTimeout time.Duration
	// CORSCredentials answers allowed origins with
	// Access-Control-Allow-Credentials: true, so pages on other domains can
	// send cookies (the identity cookie). It needs an explicit CORSOrigins
	// list: a credentialed answer never says "*".
	CORSCredentials bool
	// IdentityCookie names the gateway's own first-party id cookie (set on
	// the first request, SameSite=None; Secure; HttpOnly), recorded as
	// network_user_id and usable as shard source cookie:NAME. "" = off.
	IdentityCookie string
	// IdentityDomain is its Domain attribute ("" = the gateway's host).
	IdentityDomain string
	// IdentityMaxAge is its lifetime, renewed on every request. Default 365 days.
	IdentityMaxAge time.Duration
	// OptOutCookie: a request carrying this cookie (any value but "0"), or
	// the header X-Beacon-Opt-Out: 1, is recorded without identifiers and
	// without client IP. Default "bg_optout"; "-" turns the cookie off.
	OptOutCookie string
	// HonorDNT and HonorGPC treat DNT: 1 and Sec-GPC: 1 as opt-outs.
	HonorDNT, HonorGPC bool
	// IDParams are the parameters and top-level JSON members removed on
	// opt-out. Default uid, aid, user_id, anonymous_id.
	IDParams []string
	// AnonymizeIP zeroes the last octet of IPv4 and the last 80 bits of
	// IPv6 client addresses (record and shard key).
	AnonymizeIP bool
	// RedirectHosts allow-lists the targets of the click redirect GET /r:
	// "example.com" matches that host, ".example.com" it and its
	// subdomains. Empty: every redirect is refused (no open redirect).
	RedirectHosts []string
	// Demo serves the snippet's demo page at /demo (make run turns it on).
	Demo bool
	// Shard configures the shard key (record key).
	Shard shard.Config
	// Form bounds query and form parsing (default 256 parameters).
	Form form.Limits
	// Event bounds JSON events (defaults: depth 64, 64 KiB per event,
	// 10,000 events per batch).
	Event event.Limits

	// TrustedProxies lists the CIDRs (or single addresses) of the reverse
	// proxies and load balancers in front of the gateway. Only when the
	// socket peer is inside one of them is the ClientIPHeader believed
	// (default X-Forwarded-For; the others are then ignored); chains are
	// walked from the right, skipping trusted proxies, and the
	// first untrusted address is the client (the leftmost if all are
	// trusted). A malformed header, or none, leaves the socket peer as the
	// client. It sets the record's client_ip, the "ip" shard source, IP
	// anonymization and the per-IP rate limit. Empty (default): the socket
	// peer always, every forwarding header ignored.
	TrustedProxies []string
	// ClientIPHeader is the one header believed from a trusted proxy:
	// "X-Forwarded-For" (default, also for ""), "Forwarded" (RFC 7239 for=)
	// or "X-Real-IP" (case-insensitive). Only that header is read: nginx,
	// AWS ALB and Google's load balancers append to X-Forwarded-For but
	// pass a client's own Forwarded and X-Real-IP through, so reading
	// those unasked would let a client choose its address. Name Forwarded
	// or X-Real-IP only when your proxy overwrites it.
	ClientIPHeader string
	// RateLimitPerIP is the per-client-IP request rate (token bucket,
	// requests per second; IPv6 clients by their /64), RateBurstPerIP its
	// burst (default: one second's worth, at least 1). Over it a request
	// gets 429 rate_limited with Retry-After before anything is produced.
	// 0 (default): no limit.
	RateLimitPerIP float64
	RateBurstPerIP int
	// RateLimitPerSite and RateBurstPerSite do the same per site, the sid
	// query parameter; requests without a sid have no site limit.
	RateLimitPerSite float64
	RateBurstPerSite int
	// RateLimitMaxKeys bounds the IPs (and, separately, the sites) tracked
	// by the rate limits. Default 100,000 (a few MB each). When full, a new
	// key evicts an idle entry or the least recently used of a small sample,
	// so a flood of more distinct keys makes limiting approximate, never
	// memory unbounded.
	RateLimitMaxKeys int
	// Sites, when non-empty, is the allow-list of site ids (the sid query
	// parameter) with their write keys. A recording request (pixel, beacon,
	// batch, click) without a listed sid gets 403 unknown_site; for a site
	// with a non-empty key, one without the key in the X-Beacon-Key header
	// or the key query parameter gets 403 bad_write_key (constant-time
	// comparison). The key parameter is never recorded. Browsers cannot
	// keep a secret: list the snippet's sites with an empty key, which only
	// stops unknown sids. Empty (default): every sid is accepted.
	Sites map[string]string
	// MaxInflatedBytes caps a gzip or deflate request body once
	// decompressed; past it the answer is 413 inflated_too_large (the
	// decoder stops there: a decompression bomb costs no more). Default
	// 4 × MaxBodyBytes.
	MaxInflatedBytes int
	// MaxConnsPerIP caps the concurrent connections from one socket peer
	// address (fasthttp; excess connections get 429 and are closed). It
	// counts IPv4 peers only (fasthttp does not count IPv6) and sees the
	// proxy, not the client, behind a load balancer. 0 (default): no cap.
	MaxConnsPerIP int
	// SnowplowPaths are more paths answered as the Snowplow tracker
	// protocol's POST endpoint /com.snowplowanalytics.snowplow/tp2, as the
	// Snowplow collector's paths setting maps a tracker's custom postPath
	// (docs/snowplow.md). Empty (default): only that path.
	SnowplowPaths []string
	// MaxInflightBytes is the memory budget of request bodies and inflate
	// buffers in flight, all requests together (budget.go): a body is
	// reserved (its Content-Length, or MaxBodyBytes if chunked) before it
	// is read, an inflate buffer as it grows; past the budget the answer
	// is 503 memory_budget with Retry-After. Requests without a body never
	// wait for it. Default 256 MiB (or one maximal request if that is
	// more); at least MaxBodyBytes + 2 × MaxInflatedBytes.
	MaxInflightBytes int
	// Concurrency caps the connections served at once (fasthttp's
	// Server.Concurrency; idle keep-alive connections count). Past it a
	// new connection gets 503 too_many_connections with Retry-After and
	// is closed (sniff.go). Each open
	// connection holds a read buffer of MaxHeaderBytes, a write buffer and
	// a goroutine (about 40 KiB). Default 10,000.
	Concurrency int
	// MaxDeadLettersPerRequest bounds the dead letters one request sends
	// one by one; the rest of its rejected events are counted
	// (beacongate_dead_letters_suppressed_total) and summarised in one
	// more dead letter holding the body. Default 10.
	MaxDeadLettersPerRequest int
}

func (c Config) withDefaults() Config {
	if c.GatewayID == "" {
		c.GatewayID = "beacongate"
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 16 << 10
	}
	if c.MaxQueryBytes == 0 {
		c.MaxQueryBytes = 8 << 10
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 10 * time.Second
	}
	if c.IdentityMaxAge == 0 {
		c.IdentityMaxAge = 365 * 24 * time.Hour
	}
	switch c.OptOutCookie {
	case "":
		c.OptOutCookie = "bg_optout"
	case "-":
		c.OptOutCookie = ""
	}
	if c.MaxInflatedBytes == 0 {
		c.MaxInflatedBytes = 4 * c.MaxBodyBytes
	}
	if c.MaxInflightBytes == 0 {
		// Never below one maximal request, so large body limits set
		// before the budget existed still start.
		c.MaxInflightBytes = int(max(defaultMaxInflightBytes, minInflightBytes(c.MaxBodyBytes, c.MaxInflatedBytes)))
	}
	if c.Concurrency == 0 {
		c.Concurrency = defaultConcurrency
	}
	if c.MaxDeadLettersPerRequest == 0 {
		c.MaxDeadLettersPerRequest = 10
	}
	if c.RateLimitMaxKeys == 0 {
		c.RateLimitMaxKeys = defaultMaxKeys
	}
	if c.IDParams == nil {
		c.IDParams = []string{"uid", "aid", "user_id", "anonymous_id"}
	}
	return c
}

// Validate rejects contradictory limits at start-up.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.MaxBodyBytes < 0 || c.MaxHeaderBytes < 0 || c.MaxQueryBytes < 0:
		return fmt.Errorf("ingest: negative size limit (body %d, header %d, query %d)", c.MaxBodyBytes, c.MaxHeaderBytes, c.MaxQueryBytes)
	case c.MaxHeaderBytes < 1024:
		return fmt.Errorf("ingest: max header bytes %d is below 1 KiB: ordinary browsers would get 431", c.MaxHeaderBytes)
	case c.MaxQueryBytes >= c.MaxHeaderBytes:
		return fmt.Errorf("ingest: max query bytes %d must be below max header bytes %d, which include the query", c.MaxQueryBytes, c.MaxHeaderBytes)
	case c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.IdleTimeout < 0:
		return fmt.Errorf("ingest: negative timeout")
	}
	if c.Event.MaxEventBytes > c.MaxBodyBytes {
		return fmt.Errorf("ingest: max event bytes %d exceeds max body bytes %d", c.Event.MaxEventBytes, c.MaxBodyBytes)
	}
	if err := c.Shard.Validate(); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	for _, r := range c.AckRoutes {
		if r != "pixel" && r != "beacon" && r != "batch" && r != "click" {
			return fmt.Errorf("ingest: ack route %q: want pixel, beacon, batch or click", r)
		}
	}
	if c.CORSCredentials {
		if len(c.CORSOrigins) == 0 {
			return fmt.Errorf("ingest: CORS credentials need an explicit list of origins (-http.cors-origins), never *")
		}
		for _, o := range c.CORSOrigins {
			if o == "*" {
				return fmt.Errorf("ingest: CORS credentials cannot be allowed for any origin (*): list the origins")
			}
		}
	}
	if c.IdentityMaxAge < 0 {
		return fmt.Errorf("ingest: negative identity cookie max age %v", c.IdentityMaxAge)
	}
	for _, h := range c.RedirectHosts {
		if h == "" || strings.ContainsAny(h, "/:*") {
			return fmt.Errorf("ingest: redirect host %q: want a host name like example.com or .example.com", h)
		}
	}
	if c.AckTimeout < 0 {
		return fmt.Errorf("ingest: negative ack timeout %v", c.AckTimeout)
	}
	for _, o := range c.CORSOrigins {
		if o == "" {
			return fmt.Errorf("ingest: empty CORS origin")
		}
	}
	if _, err := parseProxies(c.TrustedProxies, c.ClientIPHeader); err != nil {
		return err
	}
	for _, r := range []struct {
		name  string
		rate  float64
		burst int
	}{{"per IP", c.RateLimitPerIP, c.RateBurstPerIP}, {"per site", c.RateLimitPerSite, c.RateBurstPerSite}} {
		if r.rate < 0 || math.IsNaN(r.rate) || math.IsInf(r.rate, 0) || r.rate > 1e9 {
			return fmt.Errorf("ingest: rate limit %s %v: want requests per second >= 0 (0 = off)", r.name, r.rate)
		}
		if r.burst < 0 || r.burst > 1e9 {
			return fmt.Errorf("ingest: rate burst %s %d: want >= 0 (0 = one second's worth)", r.name, r.burst)
		}
		if r.burst > 0 && r.rate == 0 {
			return fmt.Errorf("ingest: rate burst %s %d set without a rate", r.name, r.burst)
		}
	}
	if c.RateLimitMaxKeys < 0 {
		return fmt.Errorf("ingest: negative rate limit max keys %d", c.RateLimitMaxKeys)
	}
	for sid := range c.Sites {
		if sid == "" {
			return fmt.Errorf("ingest: empty site id in the site allow-list")
		}
	}
	if c.MaxInflatedBytes < 0 {
		return fmt.Errorf("ingest: negative max inflated bytes %d", c.MaxInflatedBytes)
	}
	if c.MaxInflatedBytes > 1<<30 {
		return fmt.Errorf("ingest: max inflated bytes %d exceeds 1 GiB", c.MaxInflatedBytes)
	}
	if err := validSnowplowPaths(c.SnowplowPaths); err != nil {
		return err
	}
	if c.MaxDeadLettersPerRequest < 0 || c.MaxDeadLettersPerRequest > 1_000_000 {
		return fmt.Errorf("ingest: max dead letters per request %d: want 1 to 1,000,000 (0: 10)", c.MaxDeadLettersPerRequest)
	}
	if err := validateBudget(c); err != nil {
		return err
	}
	if c.MaxConnsPerIP < 0 {
		return fmt.Errorf("ingest: negative max connections per IP %d", c.MaxConnsPerIP)
	}
	return nil
}
