package ingest

import (
	"hash/maphash"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/beacongate/beacongate/ingest/form"
	"github.com/beacongate/beacongate/ingest/record"
	"github.com/beacongate/beacongate/ingest/snowplow"
	"github.com/beacongate/beacongate/internal/status"
)

// Rate limits (docs/security.md): token buckets per client IP and per site (sid), kept
// in a sharded map of bounded size. A key is a 64-bit hash of the IP (IPv6
// by its /64, which one subscriber usually owns whole) or of the sid, so an
// entry costs the same whatever the client sent. A bucket that has been idle
// long enough to be full again is as good as absent, so it may be dropped
// at any time without changing any answer.
//
// When a shard is full (the limiter tracks at most maxKeys keys), a new key
// evicts an entry found among a few sampled ones: an idle one if any, else
// the least recently used of the sample. Memory is therefore fixed; the
// price is that a flood of more distinct active keys than maxKeys makes
// limiting approximate (an evicted key starts again with a full burst).

const (
	limiterShards  = 64
	defaultMaxKeys = 100_000
	evictionSample = 8
)

type bucket struct {
	tokens float64
	last   int64 // unix nanos of the last update
}

type limiterShard struct {
	mu sync.Mutex
	m  map[uint64]bucket
	_  [40]byte // keep shards on separate cache lines
}

type limiter struct {
	rate     float64 // tokens per second
	burst    float64
	perShard int
	idle     int64 // nanos after which an unused bucket is full again
	seed     maphash.Seed
	shards   [limiterShards]limiterShard
}

// newLimiter returns nil when rate is 0 (no limit).
func newLimiter(rate float64, burst, maxKeys int) *limiter {
	if rate <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = defaultBurst(rate)
	}
	if maxKeys <= 0 {
		maxKeys = defaultMaxKeys
	}
	l := &limiter{
		rate:     rate,
		burst:    float64(burst),
		perShard: max(1, maxKeys/limiterShards),
		idle:     int64(math.Ceil(float64(burst) / rate * 1e9)),
		seed:     maphash.MakeSeed(),
	}
	for i := range l.shards {
		l.shards[i].m = make(map[uint64]bucket)
	}
	return l
}

// defaultBurst is one second's worth of requests, at least 1.
func defaultBurst(rate float64) int {
	return int(max(1, math.Ceil(rate)))
}

// allow takes a token for key at now (unix nanos); when there is none it
// returns how long until there will be one.
func (l *limiter) allow(key []byte, now int64) (bool, time.Duration) {
	h := maphash.Bytes(l.seed, key)
	sh := &l.shards[h%limiterShards]
	sh.mu.Lock()
	b, ok := sh.m[h]
	if !ok {
		if len(sh.m) >= l.perShard {
			l.evict(sh, now)
		}
		b = bucket{tokens: l.burst, last: now}
	} else if now > b.last {
		b.tokens = min(l.burst, b.tokens+float64(now-b.last)*l.rate/1e9)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		sh.m[h] = b
		sh.mu.Unlock()
		return true, 0
	}
	sh.m[h] = b
	sh.mu.Unlock()
	return false, time.Duration((1 - b.tokens) / l.rate * 1e9)
}

// evict makes room in a full shard (its mutex held): it drops the idle
// entries among a few sampled ones, or else the least recently used.
func (l *limiter) evict(sh *limiterShard, now int64) {
	var oldest uint64
	oldestAt := int64(math.MaxInt64)
	dropped, n := false, 0
	for k, b := range sh.m {
		if now-b.last >= l.idle {
			delete(sh.m, k)
			dropped = true
		} else if b.last < oldestAt {
			oldest, oldestAt = k, b.last
		}
		if n++; n == evictionSample {
			break
		}
	}
	if !dropped {
		delete(sh.m, oldest)
	}
}

// len is the number of tracked keys (tests).
func (l *limiter) len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// Preallocated 429s for waits of 1..60 s: a flood must not allocate.
var (
	errRateIP   = makeRateErrors("rate limit for this client IP exceeded")
	errRateSite = makeRateErrors("rate limit for this site exceeded")
)

func makeRateErrors(msg string) []*status.Error {
	e := make([]*status.Error, 61)
	for i := 1; i <= 60; i++ {
		e[i] = status.Retry(http.StatusTooManyRequests, "rate_limited", msg, time.Duration(i)*time.Second)
	}
	return e
}

func rateError(table []*status.Error, wait time.Duration) error {
	sec := int((wait + time.Second - 1) / time.Second)
	if sec < 1 {
		sec = 1
	}
	if sec < len(table) {
		return table[sec]
	}
	return status.Retry(http.StatusTooManyRequests, "rate_limited", table[1].Error(), time.Duration(sec)*time.Second)
}

// ipKey is the limiter key of a client address: IPv4 whole, IPv6 by /64.
func ipKey(dst *[16]byte, sc *scratch) []byte {
	a := sc.addr
	if !a.IsValid() {
		return nil
	}
	if a.Is4() {
		b := a.As4()
		copy(dst[:], b[:])
		return dst[:4]
	}
	*dst = a.As16()
	clear(dst[8:])
	return dst[:]
}

// rateLimitIP applies the per-IP limit.
func (s *Server) rateLimitIP(sc *scratch) error {
	if s.ipLimit == nil {
		return nil
	}
	var k [16]byte
	key := ipKey(&k, sc)
	if key == nil {
		return nil
	}
	if ok, wait := s.ipLimit.allow(key, s.now()); !ok {
		return rateError(errRateIP, wait)
	}
	return nil
}

// queryRequestSite is the site a request's query parameters name for the
// per-site limit: sid, or for a Snowplow tracker's GET its application id
// aid (Snowplow's sid is its session id, one per visit).
func queryRequestSite(params []record.Param) []byte {
	if snowplow.Tracked(params) {
		return form.Get(params, snowplow.ParamAppID)
	}
	return form.Get(params, paramSite)
}

// rateLimitSite applies the per-site limit to the sid (none without one).
func (s *Server) rateLimitSite(sid []byte) error {
	if s.siteLimit == nil || len(sid) == 0 {
		return nil
	}
	if ok, wait := s.siteLimit.allow(sid, s.now()); !ok {
		return rateError(errRateSite, wait)
	}
	return nil
}

// now is the limiters' clock in unix nanos (tests replace s.clock).
func (s *Server) now() int64 {
	if s.clock != nil {
		return s.clock().UnixNano()
	}
	return time.Now().UnixNano()
}
