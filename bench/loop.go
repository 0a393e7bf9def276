package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"
)

// Latencies are recorded in microseconds from 1 µs to 60 s with 3
// significant digits: sub-millisecond answers on loopback and multi-second
// stalls both stay visible.
const (
	histMinMicros = 1
	histMaxMicros = 60_000_000
	histSigFigs   = 3
)

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMinMicros, histMaxMicros, histSigFigs)
}

func recordMicros(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	if us < histMinMicros {
		us = histMinMicros
	}
	if us > histMaxMicros {
		us = histMaxMicros // counted, at the ceiling, rather than dropped
	}
	_ = h.RecordValue(us)
}

// keyState is one user (shard key): its events' sequence numbers and
// which of them the gateway acknowledged. A key belongs to one worker,
// which sends its events one request at a time, so the gateway receives
// them in sequence order and must keep that order per partition.
type keyState struct {
	uid   string
	seq   uint64 // the last sequence number sent; the first is 1
	acked bitset
}

// bitset is a growable set of small integers.
type bitset []uint64

func (b *bitset) set(i uint64) {
	w := int(i / 64)
	for len(*b) <= w {
		*b = append(*b, 0)
	}
	(*b)[w] |= 1 << (i % 64)
}

func (b bitset) has(i uint64) bool {
	w := int(i / 64)
	return w < len(b) && b[w]&(1<<(i%64)) != 0
}

// counts are what a connection, a slice or a phase of load sent and
// got back.
type counts struct {
	requests, events       int64 // sent
	ackedReqs, ackedEvents int64 // 2xx (for a batch: events not in its rejected list)
	rejected               map[int]int64
	transportErrors        int64 // requests without an HTTP answer
	transportEvents        int64
	behind                 int64 // open loop: scheduled requests never sent before the end
}

// add adds o's counts to c's.
func (c *counts) add(o *counts) {
	c.requests += o.requests
	c.events += o.events
	c.ackedReqs += o.ackedReqs
	c.ackedEvents += o.ackedEvents
	c.transportErrors += o.transportErrors
	c.transportEvents += o.transportEvents
	c.behind += o.behind
	if c.rejected == nil {
		c.rejected = map[int]int64{}
	}
	for s, n := range o.rejected {
		c.rejected[s] += n
	}
}

// loadResult is what one phase of load measured at the HTTP level.
type loadResult struct {
	elapsed time.Duration
	counts
	errorSamples []string

	latency *hdrhistogram.Histogram // from the scheduled start (open) or the send (closed)
	service *hdrhistogram.Histogram // from the send
	lag     *hdrhistogram.Histogram // open loop: send - scheduled start
	windows []window
	keys    []*keyState
}

// window is one second of the phase, by completion time.
type window struct {
	hist                    *hdrhistogram.Histogram
	requests, events, acked int64
	errors                  int64
}

type windows struct {
	mu sync.Mutex
	w  []window
}

func (ws *windows) add(sec int, h *hdrhistogram.Histogram, req, ev, acked, errs int64) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for len(ws.w) <= sec {
		ws.w = append(ws.w, window{hist: newHist()})
	}
	w := &ws.w[sec]
	w.hist.Merge(h)
	w.requests += req
	w.events += ev
	w.acked += acked
	w.errors += errs
}

// loadTarget is where one phase sends its load.
type loadTarget struct {
	addr string // host:port
	host string // Host header
}

// runLoad drives target with c's load until c.Duration or c.Requests,
// with one goroutine per connection. keys are the users' states of an
// earlier slice of the same phase, to go on with; nil: new ones.
func runLoad(ctx context.Context, c Config, tr *traffic, target loadTarget, keys []*keyState) *loadResult {
	hc := &fasthttp.HostClient{
		Addr:     target.addr,
		MaxConns: c.Conns,
		// No retries: a retried GET could deliver an event twice and a
		// hidden failure would make the accounting lie.
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		ReadTimeout:               c.Timeout,
		WriteTimeout:              c.Timeout,
		MaxConnWaitTimeout:        c.Timeout,
		MaxIdleConnDuration:       time.Minute,
		MaxResponseBodySize:       4 << 20,
		NoDefaultUserAgentHeader:  true,
	}
	defer hc.CloseIdleConnections()

	if keys == nil {
		keys = make([]*keyState, len(tr.uids))
		for i, uid := range tr.uids {
			keys[i] = &keyState{uid: uid}
		}
	}
	var (
		stop    atomic.Bool
		issued  atomic.Int64
		wins    windows
		wg      sync.WaitGroup
		workers = make([]*worker, c.Conns)
	)
	for i := range workers {
		w := &worker{
			id: i, tr: tr, hc: hc, host: []byte(target.host),
			cyc: i * 7, tmpl: i * 13, // different starting points per connection
			lat: newHist(), svc: newHist(), lag: newHist(), win: newHist(),
			wins: &wins, counts: counts{rejected: map[int]int64{}},
		}
		// Keys are dealt round-robin: key k belongs to worker k % Conns.
		for k := i; k < len(keys); k += c.Conns {
			w.keys = append(w.keys, keys[k])
		}
		workers[i] = w
	}
	// The clock starts once everything is allocated.
	start := time.Now()
	deadline := start.Add(c.Duration)
	for _, w := range workers {
		w.start = start
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			stop.Store(true)
		case <-done:
		}
	}()
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.Mode == "open" {
				w.openLoop(c, deadline, &stop)
			} else {
				w.closedLoop(c, deadline, &stop, &issued)
			}
			w.flush()
		}()
	}
	wg.Wait()
	close(done)

	r := &loadResult{
		elapsed: time.Since(start), counts: counts{rejected: map[int]int64{}},
		latency: newHist(), service: newHist(), lag: newHist(), keys: keys,
	}
	for _, w := range workers {
		r.add(&w.counts)
		if len(r.errorSamples) < 5 && w.firstErr != "" {
			r.errorSamples = append(r.errorSamples, w.firstErr)
		}
		r.latency.Merge(w.lat)
		r.service.Merge(w.svc)
		r.lag.Merge(w.lag)
	}
	sort.Strings(r.errorSamples)
	r.windows = wins.w
	return r
}

// pendingEvent is one event of the request in flight.
type pendingEvent struct {
	key *keyState
	seq uint64
}

type worker struct {
	id    int
	tr    *traffic
	hc    *fasthttp.HostClient
	host  []byte
	keys  []*keyState
	next  int // next key, round-robin
	cyc   int // position in tr.kinds
	tmpl  int // position in the templates
	start time.Time

	req     fasthttp.Request
	resp    fasthttp.Response
	buf     []byte
	pending []pendingEvent

	lat, svc, lag *hdrhistogram.Histogram
	win           *hdrhistogram.Histogram
	winSec        int
	winReq        int64
	winEv         int64
	winAck        int64
	winErr        int64
	wins          *windows

	counts
	firstErr string
}

func (w *worker) closedLoop(c Config, deadline time.Time, stop *atomic.Bool, issued *atomic.Int64) {
	for !stop.Load() {
		if c.Requests > 0 && issued.Add(1) > c.Requests {
			return
		}
		now := time.Now()
		if !now.Before(deadline) {
			return
		}
		w.do(now, now)
	}
}

// openLoop sends this worker's share of a fixed schedule: request j of
// the run is due at start + j/Rate, and worker i sends j = i, i+Conns,
// i+2*Conns... A request that is due while the previous one is still
// out goes as soon as it returns, and its latency counts from when it was
// due: the wait is part of what a user would see (no coordinated
// omission).
func (w *worker) openLoop(c Config, deadline time.Time, stop *atomic.Bool) {
	interval := float64(time.Second) / c.Rate
	for k := int64(0); ; k++ {
		j := int64(w.id) + k*int64(c.Conns)
		if c.Requests > 0 && j >= c.Requests {
			return
		}
		due := w.start.Add(time.Duration(float64(j) * interval))
		if !due.Before(deadline) {
			return
		}
		now := time.Now()
		if d := due.Sub(now); d > 0 {
			time.Sleep(d)
			now = time.Now()
		}
		if stop.Load() {
			return
		}
		if !now.Before(deadline) {
			// Behind schedule at the end: count what was never sent, so
			// a saturated target cannot look fine by answering fewer.
			for ; ; k++ {
				j := int64(w.id) + k*int64(c.Conns)
				if (c.Requests > 0 && j >= c.Requests) || !w.start.Add(time.Duration(float64(j)*interval)).Before(deadline) {
					return
				}
				w.behind++
			}
		}
		w.do(due, now)
	}
}

// do sends one request, sent at now and due at due, and records it.
func (w *worker) do(due, now time.Time) {
	k := w.prepare(now)
	err := w.hc.Do(&w.req, &w.resp)
	end := time.Now()
	n := int64(len(w.pending))
	w.requests++
	w.events += n
	var acked int64
	if err != nil {
		w.transportErrors++
		w.transportEvents += n
		if w.firstErr == "" {
			w.firstErr = fmt.Sprintf("%s: %v", k, err)
		}
	} else {
		recordMicros(w.lat, end.Sub(due))
		recordMicros(w.win, end.Sub(due))
		if due != now { // open loop; in closed loop these are the latency and 0
			recordMicros(w.svc, end.Sub(now))
			recordMicros(w.lag, now.Sub(due))
		}
		acked = w.account(k)
	}
	sec := int(end.Sub(w.start) / time.Second)
	if sec != w.winSec {
		w.flush()
		w.winSec = sec
	}
	w.winReq++
	w.winEv += n
	w.winAck += acked
	if err != nil {
		w.winErr++
	}
}

// flush adds the current second's figures to the shared windows.
func (w *worker) flush() {
	if w.winReq == 0 {
		return
	}
	w.wins.add(w.winSec, w.win, w.winReq, w.winEv, w.winAck, w.winErr)
	w.win.Reset()
	w.winReq, w.winEv, w.winAck, w.winErr = 0, 0, 0, 0
}

// nextEvent takes the worker's next key and its next sequence number.
func (w *worker) nextEvent() {
	key := w.keys[w.next]
	w.next++
	if w.next == len(w.keys) {
		w.next = 0
	}
	key.seq++
	w.pending = append(w.pending, pendingEvent{key: key, seq: key.seq})
}

var (
	ctTextPlain = []byte("text/plain;charset=UTF-8") // what sendBeacon sends for a string
	ctJSON      = []byte("application/json")
	acceptImage = []byte("image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8")
	hdrAccept   = []byte("Accept")
	hdrOrigin   = []byte("Origin")
)

// prepare fills w.req with the next request and w.pending with its
// events.
func (w *worker) prepare(now time.Time) kind {
	k := w.tr.kinds[w.cyc%len(w.tr.kinds)]
	w.cyc++
	ts := now.UnixMilli()
	w.pending = w.pending[:0]
	req := &w.req
	req.Reset()
	req.Header.SetHostBytes(w.host)
	switch k {
	case kindPixel:
		t := &w.tr.pixels[w.tmpl%len(w.tr.pixels)]
		w.tmpl++
		w.nextEvent()
		p := w.pending[0]
		w.buf = append(w.buf[:0], "/i?"...)
		w.buf = t.appendTo(w.buf, p.key.uid, p.seq, ts)
		req.Header.SetMethod(fasthttp.MethodGet)
		req.SetRequestURIBytes(w.buf)
		req.Header.SetUserAgentBytes(t.ua)
		req.Header.SetRefererBytes(t.referer)
		req.Header.SetCanonical(hdrAccept, acceptImage)
	case kindBeacon:
		t := &w.tr.events[w.tmpl%len(w.tr.events)]
		w.tmpl++
		w.nextEvent()
		p := w.pending[0]
		w.buf = t.appendTo(w.buf[:0], p.key.uid, p.seq, ts)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI("/i")
		req.Header.SetContentTypeBytes(ctTextPlain)
		req.Header.SetUserAgentBytes(t.ua)
		req.Header.SetRefererBytes(t.referer)
		req.Header.SetCanonical(hdrOrigin, t.origin)
		req.SetBodyRaw(w.buf)
	case kindBatch:
		w.buf = append(w.buf[:0], '[')
		for i := 0; i < w.tr.batchEvents; i++ {
			t := &w.tr.events[w.tmpl%len(w.tr.events)]
			w.tmpl++
			w.nextEvent()
			p := w.pending[i]
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.buf = t.appendTo(w.buf, p.key.uid, p.seq, ts)
		}
		w.buf = append(w.buf, ']')
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI("/batch")
		req.Header.SetContentTypeBytes(ctJSON)
		req.Header.SetUserAgentBytes(w.tr.sdkUA)
		req.SetBodyRaw(w.buf)
	}
	return k
}

var allAccepted = []byte(`"rejected_count":0`)

// batchAnswer is the part of a POST /batch answer the accounting needs.
type batchAnswer struct {
	Rejected []struct {
		Index  int `json:"index"`
		Status int `json:"status"`
	} `json:"rejected"`
}

// account marks the acknowledged events of the answered request and
// counts the rejected ones by status; it returns the acknowledged count.
func (w *worker) account(k kind) int64 {
	status := w.resp.StatusCode()
	n := int64(len(w.pending))
	if status/100 != 2 {
		w.rejected[status] += n
		return 0
	}
	w.ackedReqs++
	if k == kindBatch && !bytes.Contains(w.resp.Body(), allAccepted) {
		// A partly accepted batch: 200 with the rejected events listed.
		var a batchAnswer
		if err := json.Unmarshal(w.resp.Body(), &a); err != nil {
			// An answer we cannot read acknowledges nothing for sure.
			w.rejected[status] += n
			if w.firstErr == "" {
				w.firstErr = fmt.Sprintf("batch: unreadable 200 answer: %v", err)
			}
			return 0
		}
		for _, r := range a.Rejected {
			if r.Index >= 0 && r.Index < len(w.pending) && w.pending[r.Index].key != nil {
				w.pending[r.Index].key = nil
				w.rejected[r.Status]++
			}
		}
	}
	var acked int64
	for _, p := range w.pending {
		if p.key != nil {
			p.key.acked.set(p.seq)
			acked++
		}
	}
	w.ackedEvents += acked
	return acked
}
