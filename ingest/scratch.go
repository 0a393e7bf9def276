package ingest

import (
	"net"
	"net/netip"

	"github.com/valyala/fasthttp"

	"github.com/beacongate/beacongate/ingest/event"
	"github.com/beacongate/beacongate/ingest/form"
	"github.com/beacongate/beacongate/ingest/record"
	"github.com/beacongate/beacongate/internal/kafka/delivery"
	"github.com/beacongate/beacongate/shard"
)

// scratch is the per-request working memory, pooled so that the hot path
// does not allocate once the pool is warm. Everything in it borrows from
// the RequestCtx or from its own buffers, and is dropped (reset) before it
// goes back to the pool: nothing from a RequestCtx outlives its handler.
type scratch struct {
	ctx            *fasthttp.RequestCtx
	b              record.Beacon
	params         []record.Param
	buf            []byte // decoded query and form parameters
	jbuf           []byte // unescaped JSON field values, for shard-key lookups
	ipRaw          [16]byte
	ipText         []byte // the client IP, printed, for the "ip" shard source
	reqID          []byte
	key            []byte
	out            []byte // the encoded record
	items          []batchItem
	fields         event.Fields      // members noted while the request's JSON events were validated (Server.noted)
	noted          [][]byte          // their raw values, len(fields.Names) per item, in item order
	cur            [][]byte          // the current item's (Lookup), or nil
	curEv          []byte            // the event they were noted in
	recBuf         []byte            // a batch's encoded keys and records, back to back
	recSpans       []recSpan         // where each is in recBuf
	recs           []delivery.Record // the admitted ones, for BatchSink
	recIdx         []int             // their indexes in items
	resp           []byte            // the batch summary
	ack            *delivery.Ack     // acknowledged mode: the request waits for it
	optOut         bool              // the client opted out: no identifiers, no IP
	identityCookie string            // the identity cookie's name, for Lookup
	nuid           [36]byte          // the gateway-set browser id (identity cookie): 32 hex digits, or a Snowplow collector's UUID
	stripped       []byte            // a JSON event with identifier members removed (opt-out)
	addr           netip.Addr        // the client address (socket or trusted proxy's word), before anonymization
	body           []byte            // the POST body as read (inflated when compressed), for dead letters
	dec            decoders          // Content-Encoding decoders and the inflated body
	target         string            // the click's redirect target, checked
	keyer          *shard.Keyer      // a protocol's own shard key (snowplow.go); nil: the server's
	dlqSent        int               // dead letters sent one by one (deadletters.go)
	dlqSuppressed  int               // and held back for the summary
	dlqFirst       int               // batch index of the first held back
	dlqLast        int               // and of the last
	inflateHeld    int64             // inflate buffer bytes reserved in the memory budget (budget.go)
}

type batchItem struct {
	ev  []byte
	err error // why it was rejected (a StatusError), or nil
	ok  bool  // taken by the sink
}

// recSpan locates one encoded record of a batch in scratch.recBuf.
type recSpan struct {
	key, end, val int
	overflow      bool // a hot key's overflow (hotkeys.go)
}

func (sc *scratch) reset() {
	sc.ctx = nil
	sc.ack = nil
	sc.optOut = false
	sc.addr = netip.Addr{}
	sc.body = nil
	sc.target = ""
	sc.keyer = nil
	sc.dlqSent, sc.dlqSuppressed = 0, 0
	sc.dec.src.Reset(nil)
	sc.b = record.Beacon{}
	// Drop references into request memory; keep capacity.
	clear(sc.params)
	sc.params = sc.params[:0]
	clear(sc.items)
	sc.items = sc.items[:0]
	clear(sc.noted)
	sc.noted = sc.noted[:0]
	clear(sc.fields.Vals)
	sc.cur, sc.curEv = nil, nil
	clear(sc.recs)
	sc.recs = sc.recs[:0]
	if cap(sc.recBuf) > maxPooledBatchBytes {
		sc.recBuf = nil // one huge batch must not pin its buffer in the pool
	}
}

// maxPooledBatchBytes bounds the batch buffer a pooled scratch keeps.
const maxPooledBatchBytes = 1 << 20

// Lookup implements shard.Event over the current request and event.
func (sc *scratch) Lookup(kind shard.Kind, name string) []byte {
	switch kind {
	case shard.KindQuery:
		return form.Get(sc.b.Params, name)
	case shard.KindJSON:
		if len(sc.b.Payload) == 0 {
			return nil
		}
		if v, ok := sc.notedField(name); ok {
			return v
		}
		v, jbuf, ok := event.Field(sc.b.Payload, name, sc.jbuf)
		sc.jbuf = jbuf
		if !ok {
			return nil
		}
		return v
	case shard.KindHeader:
		if sc.optOut {
			return nil
		}
		return sc.ctx.Request.Header.Peek(name)
	case shard.KindCookie:
		if sc.optOut {
			return nil
		}
		if len(sc.b.NetworkUserID) > 0 && name == sc.identityCookie {
			return sc.b.NetworkUserID // also when it was set on this very request
		}
		return sc.ctx.Request.Header.Cookie(name)
	case shard.KindIP:
		return sc.ipText
	}
	return nil
}

// noteFields returns the Fields for validating a JSON event of this
// request (Server.noted in sc.fields), or nil when there is nothing to
// note or a protocol's own keyer asks for other members.
func (s *Server) noteFields(sc *scratch) *event.Fields {
	if sc.keyer != nil || len(s.noted) == 0 {
		return nil
	}
	sc.fields.Names = s.noted
	return &sc.fields
}

// noteItem makes batch item i's noted members the ones Lookup reads.
func (sc *scratch) noteItem(i int) {
	sc.cur, sc.curEv = nil, nil
	if n := len(sc.fields.Names); n > 0 && len(sc.noted) >= (i+1)*n {
		sc.cur, sc.curEv = sc.noted[i*n:(i+1)*n], sc.items[i].ev
	}
}

// notedField is Field for the member name of the payload when the split
// noted it, without another walk over the event; ok false if it did not
// (not a batch event, a member the split was not asked for, or a payload
// that is no longer the event as split: opt-out strips members).
func (sc *scratch) notedField(name string) ([]byte, bool) {
	p := sc.b.Payload
	if sc.cur == nil || len(p) != len(sc.curEv) || &p[0] != &sc.curEv[0] {
		return nil, false
	}
	for k, n := range sc.fields.Names {
		if n == name {
			v, jbuf, ok := event.Value(sc.cur[k], sc.jbuf)
			sc.jbuf = jbuf
			if !ok {
				return nil, true // noted as absent, or not a string or number
			}
			return v, true
		}
	}
	return nil, false
}

// setClientIP fills ClientIP (4 or 16 bytes) and its printed form; the
// address comes from setClientAddr (proxy.go), which believes forwarded
// addresses only from trusted proxies (docs/security.md).
func (sc *scratch) setClientIP(ip net.IP, anonymize bool) {
	sc.ipText = sc.ipText[:0]
	if v4 := ip.To4(); v4 != nil {
		copy(sc.ipRaw[:4], v4)
		if anonymize {
			sc.ipRaw[3] = 0 // keep the /24
		}
		sc.b.ClientIP = sc.ipRaw[:4]
		sc.ipText = netip.AddrFrom4([4]byte(sc.ipRaw[:4])).AppendTo(sc.ipText)
		return
	}
	if len(ip) == net.IPv6len {
		copy(sc.ipRaw[:], ip)
		if anonymize {
			clear(sc.ipRaw[6:]) // keep the /48
		}
		sc.b.ClientIP = sc.ipRaw[:]
		sc.ipText = netip.AddrFrom16(sc.ipRaw).AppendTo(sc.ipText)
		return
	}
	sc.b.ClientIP = nil
}
