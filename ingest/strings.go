package ingest

// The header names, header values and media types the handlers read and
// write, made into byte slices once: fasthttp's []byte methods then need
// no conversion per request.

// Header names.
var (
	hdrACAC            = []byte("Access-Control-Allow-Credentials")
	hdrACAH            = []byte("Access-Control-Allow-Headers")
	hdrACAM            = []byte("Access-Control-Allow-Methods")
	hdrACAO            = []byte("Access-Control-Allow-Origin")
	hdrACEH            = []byte("Access-Control-Expose-Headers")
	hdrACMA            = []byte("Access-Control-Max-Age")
	hdrAcceptEncoding  = []byte("Accept-Encoding")
	hdrAllow           = []byte("Allow")
	hdrBeaconAck       = []byte("X-Beacon-Ack")
	hdrBeaconKey       = []byte("X-Beacon-Key")
	hdrCacheCtl        = []byte("Cache-Control")
	hdrContentEncoding = []byte("Content-Encoding")
	hdrDNT             = []byte("DNT")
	hdrETag            = []byte("ETag")
	hdrGPC             = []byte("Sec-GPC")
	hdrIfNoneMatch     = []byte("If-None-Match")
	hdrLocation        = []byte("Location")
	hdrOptOut          = []byte("X-Beacon-Opt-Out")
	hdrOrigin          = []byte("Origin")
	hdrRequestID       = []byte("X-Request-Id")
	hdrRetryAfter      = []byte("Retry-After")
	hdrVary            = []byte("Vary")
)

// Header values.
var (
	valAllowHeaders = []byte("Content-Type, X-Request-Id, X-Beacon-Ack")
	valDeflate      = []byte("deflate")
	valExpose       = []byte("X-Request-Id, Retry-After")
	valGzip         = []byte("gzip")
	valIdentity     = []byte("identity")
	valKafka        = []byte("kafka")
	valMaxAge       = []byte("86400")
	valMethods      = []byte("GET, HEAD, POST, OPTIONS")
	valNoStore      = []byte("no-store, max-age=0")
	valNone         = []byte("none")
	valStar         = []byte("*")
	valTrue         = []byte("true")
	valXGzip        = []byte("x-gzip")
)

// Content types the answers carry (ct) and media types requests are
// matched against (mt).
var (
	ctGIF       = []byte("image/gif")
	ctTextPlain = []byte("text/plain; charset=utf-8")
	mtForm      = []byte("application/x-www-form-urlencoded")
	mtJSON      = []byte("application/json")
	mtJSONLines = []byte("application/jsonl")
	mtNDJSON    = []byte("application/x-ndjson")
	mtText      = []byte("text/plain")
)
