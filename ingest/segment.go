package ingest

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/beacongate/beacongate/ingest/event"
	"github.com/beacongate/beacongate/ingest/form"
	"github.com/beacongate/beacongate/ingest/record"
	"github.com/beacongate/beacongate/internal/status"
	"github.com/beacongate/beacongate/shard"
)

// The Segment tracking API (docs/segment.md): Segment's SDKs (analytics.js,
// analytics-node, analytics-go, analytics-python, ...) send here unchanged
// once their host is pointed at the gateway. Each call becomes one record
// with protocol PROTOCOL_SEGMENT, event_type the call type, event_id the
// messageId and site the site the write key maps to; the payload is the
// event's JSON with the batch's context and integrations merged in and the
// gateway's receivedAt added. Answers are Segment's: exactly 200
// {"success":true}, errors as {"success":false,"code":..,"message":..}.

// Segment's limits: 32 KB per event, 500 KB per batch.
const (
	segmentMaxEventBytes = 32 << 10
	segmentMaxBatchBytes = 500 << 10
	// A merged event (its own bytes plus the batch's context) may grow;
	// past this it is refused rather than written as a huge record.
	segmentMaxMergedBytes = 2 * segmentMaxEventBytes
)

var (
	segmentPrefix    = []byte("/v1/")
	segmentSettings  = []byte("/settings")
	segmentProjects  = []byte("projects/")
	hdrAuthorization = []byte("Authorization")
	hdrRateReset     = []byte("X-RateLimit-Reset")
	valBasic         = []byte("Basic ")
	valSegmentAllow  = []byte("Authorization, Content-Type, X-Retry-Count, X-Request-Id, X-Beacon-Ack")
	segmentOK        = []byte(`{"success":true}`)
)

var (
	errSegmentNoUser     = status.New(http.StatusBadRequest, "missing_user_id", "userId or anonymousId is required")
	errSegmentNoEvent    = status.New(http.StatusBadRequest, "missing_event", "a track call needs a non-empty event name")
	errSegmentNoGroup    = status.New(http.StatusBadRequest, "missing_group_id", "a group call needs a groupId")
	errSegmentNoPrevious = status.New(http.StatusBadRequest, "missing_previous_id", "an alias call needs userId and previousId")
	errSegmentType       = status.New(http.StatusBadRequest, "unknown_call_type", "type must be track, identify, page, screen, group or alias")
	errSegmentNoBatch    = status.New(http.StatusBadRequest, "missing_batch", "a batch body needs a \"batch\" array")
	errSegmentBadKey     = status.New(http.StatusUnauthorized, "bad_write_key", "missing or unknown write key (Basic auth user name or the body's writeKey)")
	errSegmentBadAuth    = status.New(http.StatusUnauthorized, "bad_authorization", "Authorization header is not Basic base64(writeKey:)")
	errSegmentTooLarge   = status.New(http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("a Segment request body may hold at most %d bytes", segmentMaxBatchBytes))
	errSegmentMerged     = status.New(http.StatusRequestEntityTooLarge, "event_too_large", fmt.Sprintf("event with the batch's context exceeds %d bytes", segmentMaxMergedBytes))
)

// segmentCall is one call type: its record event_type and the paths that
// take it.
type segmentCall struct {
	name []byte
}

var (
	callTrack    = segmentCall{name: []byte("track")}
	callIdentify = segmentCall{name: []byte("identify")}
	callPage     = segmentCall{name: []byte("page")}
	callScreen   = segmentCall{name: []byte("screen")}
	callGroup    = segmentCall{name: []byte("group")}
	callAlias    = segmentCall{name: []byte("alias")}
)

// segmentCallOf maps a /v1/ path's rest (and a batch element's type) to its
// call; batch reports the batch endpoints.
func segmentCallOf(name []byte) (c *segmentCall, batch bool) {
	switch string(name) {
	case "track", "t":
		return &callTrack, false
	case "identify", "i":
		return &callIdentify, false
	case "page", "p":
		return &callPage, false
	case "screen", "s":
		return &callScreen, false
	case "group", "g":
		return &callGroup, false
	case "alias", "a":
		return &callAlias, false
	case "batch", "b", "import":
		return nil, true
	}
	return nil, false
}

// segmentTypeOf maps a batch element's type member to its call.
func segmentTypeOf(typ []byte) *segmentCall {
	switch string(typ) {
	case "track":
		return &callTrack
	case "identify":
		return &callIdentify
	case "page":
		return &callPage
	case "screen":
		return &callScreen
	case "group":
		return &callGroup
	case "alias":
		return &callAlias
	}
	return nil
}

// segment is the Server's Segment state, fixed at New.
type segment struct {
	keyer *shard.Keyer
	keys  []segmentKey // from Config.Sites; nil: no allow-list
}

// segmentKey is one accepted write key and the site it maps to.
type segmentKey struct{ key, site []byte }

func newSegment(cfg Config) (segment, error) {
	// One user's events in order on one partition, as for the snippet;
	// -shard.prefix and -shard.max-key-bytes apply as they do there.
	keyer, err := shard.New(shard.Config{Sources: "json:userId,json:anonymousId", Prefix: cfg.Shard.Prefix, MaxKeyBytes: cfg.Shard.MaxKeyBytes})
	if err != nil {
		return segment{}, fmt.Errorf("ingest: segment shard key: %w", err)
	}
	sg := segment{keyer: keyer}
	for sid, key := range cfg.Sites {
		// A site with a key is named by that key; a site listed without
		// one (a browser's, whose key is public anyway) by its sid.
		k := key
		if k == "" {
			k = sid
		}
		sg.keys = append(sg.keys, segmentKey{key: []byte(k), site: []byte(sid)})
	}
	return sg, nil
}

// site maps a write key to its site. Every key is compared in constant
// time, so the answer's timing does not tell how much of a key matched.
func (sg *segment) site(key []byte) ([]byte, bool) {
	var site []byte
	for i := range sg.keys {
		if subtle.ConstantTimeCompare(sg.keys[i].key, key) == 1 {
			site = sg.keys[i].site
		}
	}
	return site, site != nil
}

// routeSegment answers every path under /v1/.
func (s *Server) routeSegment(ctx *fasthttp.RequestCtx, path, query []byte) int {
	m := &ctx.Request.Header
	rest := path[len(segmentPrefix):]
	if bytes.HasPrefix(rest, segmentProjects) && bytes.HasSuffix(rest, segmentSettings) {
		if !m.IsGet() && !m.IsHead() && !m.IsOptions() {
			return s.segmentFail(ctx, errMethod, "GET, HEAD, OPTIONS")
		}
		if m.IsOptions() {
			return s.segmentPreflight(ctx)
		}
		key := rest[len(segmentProjects) : len(rest)-len(segmentSettings)]
		return s.serveSegmentSettings(ctx, key)
	}
	call, batch := segmentCallOf(rest)
	if call == nil && !batch {
		return s.segmentFail(ctx, errNotFound, "")
	}
	switch {
	case m.IsPost():
		if batch {
			return s.serveSegmentBatch(ctx, path, query)
		}
		return s.serveSegmentCall(ctx, call, path, query)
	case m.IsOptions():
		return s.segmentPreflight(ctx)
	}
	return s.segmentFail(ctx, errMethod, "POST, OPTIONS")
}

// segmentPreflight is the CORS preflight, allowing Segment's headers when
// the browser does not list the ones it wants.
func (s *Server) segmentPreflight(ctx *fasthttp.RequestCtx) int {
	st := s.cors.preflight(ctx)
	if st == fasthttp.StatusNoContent && len(ctx.Request.Header.Peek("Access-Control-Request-Headers")) == 0 {
		ctx.Response.Header.SetCanonical(hdrACAH, valSegmentAllow)
	}
	return st
}

// segmentBegin is begin (pipeline.go) for the Segment endpoints: the same
// refusals and request-wide fields, except that the site comes from the
// write key (segmentSite), not the sid parameter.
func (s *Server) segmentBegin(ctx *fasthttp.RequestCtx, kind record.Kind, path, query []byte) (*scratch, error) {
	sc, err := s.open(ctx, routeSegment, kind, path, query)
	sc.b.Protocol = record.ProtocolSegment
	if err != nil {
		return sc, err
	}
	sc.params, sc.buf, err = form.Parse(sc.params[:0], sc.buf[:0], query, s.cfg.Form)
	if err != nil {
		return sc, badRequest(err)
	}
	sc.params = dropKeyParams(sc.params)
	if sc.optOut {
		sc.params = s.dropIDParams(sc.params)
	}
	sc.b.Params = sc.params
	sc.b.ParamsValidUTF8 = true
	return sc, nil
}

// segmentBody reads the body (inflated), within Segment's batch limit.
func (s *Server) segmentBody(sc *scratch) ([]byte, error) {
	body, err := s.checkBody(sc)
	if err != nil {
		return nil, err
	}
	if len(body) > segmentMaxBatchBytes {
		return nil, errSegmentTooLarge
	}
	return body, nil
}

// basicUser returns the user name of a Basic Authorization header, decoded
// into buf; present is false without such a header.
func basicUser(h, buf []byte) (user, newBuf []byte, present bool, err error) {
	if len(h) == 0 {
		return nil, buf, false, nil
	}
	if len(h) < len(valBasic) || !bytes.EqualFold(h[:len(valBasic)], valBasic) {
		return nil, buf, true, errSegmentBadAuth
	}
	enc := bytes.TrimSpace(h[len(valBasic):])
	n := base64.StdEncoding.DecodedLen(len(enc))
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	m, derr := base64.StdEncoding.Decode(buf[:n], enc)
	if derr != nil {
		return nil, buf, true, errSegmentBadAuth
	}
	user = buf[:m]
	if i := bytes.IndexByte(user, ':'); i >= 0 {
		user = user[:i]
	}
	return user, buf, true, nil
}

// segmentAuth finds the request's write key, from the Basic auth user name
// or else the body's writeKey (obj: nil before the body is read), and sets
// the record's site. Without an allow-list every key, or none, is taken
// and the site stays empty. done reports whether a key was found (a Basic
// header decides before the body is read).
func (s *Server) segmentAuth(sc *scratch, obj []byte) (done bool, err error) {
	user, buf, present, err := basicUser(sc.ctx.Request.Header.PeekBytes(hdrAuthorization), sc.jbuf[:0])
	sc.jbuf = buf[:0]
	if err != nil {
		if s.segment.keys == nil {
			return true, nil // no allow-list: the header does not matter
		}
		return true, err
	}
	key := user
	if !present || len(user) == 0 {
		if obj == nil {
			return false, nil // look in the body
		}
		key, sc.jbuf, _ = event.Field(obj, "writeKey", sc.jbuf[:0])
	}
	if s.segment.keys == nil {
		return true, nil
	}
	site, ok := s.segment.site(key)
	clear(sc.jbuf[:cap(sc.jbuf)]) // the key is never kept, not even in a pooled buffer
	if !ok {
		return true, errSegmentBadKey
	}
	sc.b.Site = site
	return true, s.rateLimitSite(site)
}

// segmentOpen begins a Segment request and reads its body: the write key
// (Authorization, else the body's writeKey), the body (inflated) checked
// as one JSON object of at most limit bytes. A body that is not one is
// dead-lettered unless a key allow-list could not place it.
func (s *Server) segmentOpen(ctx *fasthttp.RequestCtx, kind record.Kind, path, query []byte, limit int) (sc *scratch, body, obj []byte, err error) {
	sc, err = s.segmentBegin(ctx, kind, path, query)
	if err != nil {
		return sc, nil, nil, err
	}
	keyed, err := s.segmentAuth(sc, nil)
	if err != nil {
		return sc, nil, nil, err
	}
	if body, err = s.segmentBody(sc); err != nil {
		return sc, nil, nil, err
	}
	if obj, err = event.ValidateObject(body, s.segmentLimits(limit)); err != nil {
		err = badRequest(err)
		if keyed || s.segment.keys == nil {
			s.deadLetter(sc, body, err, -1)
		}
		return sc, body, nil, err
	}
	if !keyed {
		if _, err := s.segmentAuth(sc, obj); err != nil {
			return sc, body, nil, err
		}
	}
	return sc, body, obj, nil
}

// serveSegmentCall answers a single call, /v1/track and the like: one
// record of kind KIND_BEACON.
func (s *Server) serveSegmentCall(ctx *fasthttp.RequestCtx, call *segmentCall, path, query []byte) int {
	s.cors.allow(ctx)
	sc, _, obj, err := s.segmentOpen(ctx, record.KindBeacon, path, query, segmentMaxEventBytes)
	defer s.end(sc)
	if err != nil {
		return s.segmentFail(ctx, err, "")
	}
	sh := segmentShared{receivedAtUs: sc.b.ReceivedAtMicros}
	if err = s.segmentEvent(sc, call, obj, &sh); err == nil {
		err = s.segmentProduce(sc)
	}
	if err != nil {
		s.deadLetter(sc, obj, err, -1)
		return s.segmentFail(ctx, err, "")
	}
	if err = s.waitAck(sc); err != nil {
		return s.segmentFail(ctx, err, "")
	}
	return segmentAnswer(ctx)
}

func segmentAnswer(ctx *fasthttp.RequestCtx) int {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.Header.SetContentTypeBytes(mtJSON)
	ctx.SetBody(segmentOK)
	return fasthttp.StatusOK
}

// segmentLimits are the event limits with Segment's size.
func (s *Server) segmentLimits(size int) event.Limits {
	lim := s.cfg.Event
	lim.MaxEventBytes = size
	return lim
}

// segmentShared is what a batch's events share: the batch-level members
// merged into each, and the gateway's receivedAt.
type segmentShared struct {
	batch                         bool
	context, integrations, sentAt []byte // raw values; nil when absent
	receivedAtUs                  int64
}

// segmentEvent checks one event (ev, a validated object) and builds its
// record fields: the payload (with the batch's context and integrations
// merged in, and receivedAt), event type and id. call is nil for a batch
// element, whose type member names it. The event is read in one pass,
// which copies the members kept and notes the ones the call needs.
func (s *Server) segmentEvent(sc *scratch, call *segmentCall, ev []byte, sh *segmentShared) error {
	sc.jbuf = sc.jbuf[:0]
	var f segmentFields
	// The type goes first; a batch element's is known only after the
	// pass, so room is left for the longest.
	p := append(sc.stripped[:0], `{"type":"identify"`...)
	head := len(p)
	optOut := sc.optOut
	event.EachMember(ev, func(m event.Member) bool {
		if f.note(m) || optOut && (segmentIdentifier(m) || keyInMember(m, s.cfg.IDParams)) {
			return true
		}
		p = append(p, ',')
		p = event.AppendMember(p, m)
		return true
	})
	if call == nil {
		typ, jbuf, _ := event.Scalar(f.typ, sc.jbuf)
		sc.jbuf = jbuf
		if call = segmentTypeOf(typ); call == nil {
			sc.stripped = p
			return errSegmentType
		}
	}
	if err := checkCall(call, &f); err != nil {
		sc.stripped = p
		return err
	}
	// Put the call type into the room left for it, moving the members
	// left when it is shorter than "identify".
	start := head - len(`identify"`) + len(call.name) + 1
	copy(p[len(`{"type":"`):], call.name)
	p[start-1] = '"'
	p = append(p[:start], p[head:]...)
	p = appendMerged(p, "context", f.context, f.hasContext, sh.context)
	p = appendMerged(p, "integrations", f.integrations, f.hasIntegrations, sh.integrations)
	if sh.sentAt != nil && !f.hasSentAt {
		p = append(p, `,"sentAt":`...)
		p = append(p, sh.sentAt...)
	}
	p = append(p, `,"receivedAt":"`...)
	p = appendReceivedAt(p, sh.receivedAtUs)
	p = append(p, `"}`...)
	sc.stripped = p
	if len(p) > segmentMaxMergedBytes {
		return errSegmentMerged
	}
	sc.b.Payload = p
	sc.b.EventType = call.name
	id, jbuf, _ := event.Scalar(f.messageID, sc.jbuf)
	sc.jbuf = jbuf
	sc.b.EventID = id
	return nil
}

// appendMerged appends ,"name": with the event's value ev1 (present: has)
// merged over the batch's b1 (nil: none), which wins nothing the event
// sets. A value that is no object on either side is kept as the event
// sent it.
func appendMerged(p []byte, name string, ev1 []byte, has bool, b1 []byte) []byte {
	switch {
	case event.IsObject(ev1) || event.IsObject(b1):
		p = append(p, ',', '"')
		p = append(p, name...)
		p = append(p, '"', ':')
		return event.AppendMerged(p, ev1, b1)
	case has:
		p = append(p, ',', '"')
		p = append(p, name...)
		p = append(p, '"', ':')
		return append(p, ev1...)
	}
	return p
}

// checkCall checks the members call requires (Segment's spec). A switch,
// not a func field: an indirect call would move f to the heap.
func checkCall(call *segmentCall, f *segmentFields) error {
	switch call {
	case &callTrack:
		return checkTrack(f)
	case &callGroup:
		return checkGroup(f)
	case &callAlias:
		return checkAlias(f)
	}
	return checkUser(f)
}

func checkUser(f *segmentFields) error {
	if nonEmpty(f.userID) || nonEmpty(f.anonymousID) {
		return nil
	}
	return errSegmentNoUser
}

func checkTrack(f *segmentFields) error {
	if err := checkUser(f); err != nil {
		return err
	}
	if len(f.event) < 3 || f.event[0] != '"' {
		return errSegmentNoEvent
	}
	return nil
}

func checkGroup(f *segmentFields) error {
	if err := checkUser(f); err != nil {
		return err
	}
	if !nonEmpty(f.groupID) {
		return errSegmentNoGroup
	}
	return nil
}

func checkAlias(f *segmentFields) error {
	if !nonEmpty(f.userID) || !nonEmpty(f.previousID) {
		return errSegmentNoPrevious
	}
	return nil
}

// segmentKeyed is the scratch as the Segment shard keyer sees it: the
// query source sid answers the site the write key mapped to, so a
// -shard.prefix of query:sid prefixes Segment keys with their site too.
type segmentKeyed scratch

func (e *segmentKeyed) Lookup(kind shard.Kind, name string) []byte {
	if kind == shard.KindQuery && name == paramSite && len(e.b.Site) > 0 {
		return e.b.Site
	}
	return (*scratch)(e).Lookup(kind, name)
}

// segmentEncode derives the key (userId, else anonymousId) and encodes
// the record into sc.key and sc.out.
func (s *Server) segmentEncode(sc *scratch) {
	sc.b.ShardKey = nil
	sc.key = s.segment.keyer.AppendKey(sc.key[:0], (*segmentKeyed)(sc))
	sc.b.ShardKey = sc.key
	sc.b.Overflow = s.hot.Overflow(sc.key, sc.b.ReceivedAtMicros*1000)
	sc.out = record.Append(sc.out[:0], &sc.b)
}

// segmentProduce encodes and produces the current record.
func (s *Server) segmentProduce(sc *scratch) error {
	s.segmentEncode(sc)
	return s.produceEncoded(sc)
}

// appendReceivedAt appends us as Segment writes its receivedAt: ISO 8601
// in UTC with milliseconds, "2026-12-07T06:00:00.123Z". By hand, not with
// time.AppendFormat, whose buffer would escape to the heap.
func appendReceivedAt(dst []byte, us int64) []byte {
	t := time.UnixMicro(us).UTC()
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	dst = appendDigits(dst, y, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(mo), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, d, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, h, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, mi, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, s, 2)
	dst = append(dst, '.')
	dst = appendDigits(dst, t.Nanosecond()/1e6, 3)
	return append(dst, 'Z')
}

// appendDigits appends v (>= 0) in n decimal digits, zero-padded.
func appendDigits(dst []byte, v, n int) []byte {
	var b [8]byte
	for i := n - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, b[:n]...)
}

// segmentFail answers err in Segment's error shape and counts it; 429 and
// 503 carry Retry-After, and 429 also X-RateLimit-Reset (the same seconds),
// which Segment's SDKs read.
func (s *Server) segmentFail(ctx *fasthttp.RequestCtx, err error, allow string) int {
	st := s.segmentError(ctx, err, allow)
	countRejected(asStatus(err).Reason(), 1)
	return st
}

// segmentError writes the error answer of segmentFail without counting.
func (s *Server) segmentError(ctx *fasthttp.RequestCtx, err error, allow string) int {
	se := asStatus(err)
	st := se.HTTPStatus()
	ctx.SetStatusCode(st)
	h := &ctx.Response.Header
	h.SetContentTypeBytes(mtJSON)
	if allow != "" {
		h.SetCanonical(hdrAllow, []byte(allow))
	}
	if ra, ok := se.(retryAfterer); ok && ra.RetryAfter() > 0 {
		var num [20]byte
		v := strconv.AppendInt(num[:0], int64((ra.RetryAfter()+time.Second-1)/time.Second), 10)
		h.SetCanonical(hdrRetryAfter, v)
		if st == fasthttp.StatusTooManyRequests {
			h.SetCanonical(hdrRateReset, v)
		}
	}
	var buf [512]byte
	b := append(buf[:0], `{"success":false,"code":`...)
	b = appendJSONString(b, se.Reason())
	b = append(b, `,"message":`...)
	b = appendJSONString(b, se.Error())
	b = append(b, '}')
	ctx.SetBody(b)
	if st >= 500 && st != fasthttp.StatusServiceUnavailable {
		s.throttle.Error("5xx:"+se.Reason(), "segment request failed", zap.Int("status", st), zap.Error(err))
	}
	return st
}
