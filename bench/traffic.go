package bench

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
)

// The traffic is pre-generated: a few hundred event templates per kind,
// each a complete event with holes for the three things that change per
// event (user id, sequence number, timestamp). Making one request is
// then a few appends of prepared bytes and two integer formats, so the
// load generator, which shares the machine's cores with the gateway,
// spends as little CPU as it can and the measured ratios stay honest.

// kind is a request kind; see Mix.
type kind uint8

const (
	kindPixel kind = iota
	kindBeacon
	kindBatch
	numKinds
)

var kindNames = [numKinds]string{"pixel", "beacon", "batch"}

func (k kind) String() string { return kindNames[k] }

// hole is a per-event value filled into a template.
type hole uint8

const (
	holeUID hole = iota
	holeSeq
	holeTS
)

// template is one event: parts[0] hole[0] parts[1] hole[1] ... parts[n].
type template struct {
	parts   [][]byte
	holes   []hole
	referer []byte // the page the event comes from, for the Referer header
	origin  []byte // its origin, for the Origin header of a POST
	ua      []byte // a browser User-Agent
}

// appendTo appends the event with its holes filled.
func (t *template) appendTo(dst []byte, uid string, seq uint64, tsMillis int64) []byte {
	for i, h := range t.holes {
		dst = append(dst, t.parts[i]...)
		switch h {
		case holeUID:
			dst = append(dst, uid...)
		case holeSeq:
			dst = strconv.AppendUint(dst, seq, 10)
		case holeTS:
			dst = strconv.AppendInt(dst, tsMillis, 10)
		}
	}
	return append(dst, t.parts[len(t.holes)]...)
}

// templateBuilder collects a template's parts and holes.
type templateBuilder struct {
	t   template
	cur []byte
}

func (b *templateBuilder) lit(s string) *templateBuilder { b.cur = append(b.cur, s...); return b }
func (b *templateBuilder) hole(h hole) *templateBuilder {
	b.t.parts = append(b.t.parts, b.cur)
	b.t.holes = append(b.t.holes, h)
	b.cur = nil
	return b
}
func (b *templateBuilder) done() template {
	b.t.parts = append(b.t.parts, b.cur)
	return b.t
}

// fixedLen is the template's length without its holes.
func (t *template) fixedLen() int {
	n := 0
	for _, p := range t.parts {
		n += len(p)
	}
	return n
}

// traffic is everything the workers send, generated once per run.
type traffic struct {
	rid         string
	batchEvents int
	pixels      []template // query strings, without "/i?"
	events      []template // JSON objects, for sendBeacon and batches
	kinds       []kind     // the mix as a shuffled cycle of request kinds
	uids        []string   // key i's user id
	sdkUA       []byte     // User-Agent of server-side batch senders
	meanBytes   int
}

// templatesPerKind is enough variety (pages, events, sizes) that the
// gateway cannot benefit from repetition, and small enough to stay in
// cache-friendly memory (~1 MB at 2 KB events).
const templatesPerKind = 512

// Realistic values for the fields; a front's traffic is dominated by a
// few browsers, screens and event names.
var (
	userAgents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
	}
	sites    = []string{"shop.example.com", "news.example.org", "www.example.net", "app.example.io", "blog.example.com"}
	paths    = []string{"/", "/products/running-shoes-x2?color=blue&size=42", "/cart", "/checkout/payment", "/articles/2024/05/city-council-votes-on-budget", "/search?q=winter+jacket&page=2", "/account/orders", "/category/electronics/laptops"}
	events   = []string{"page_view", "page_view", "page_view", "click", "scroll", "add_to_cart", "purchase", "video_progress"}
	screens  = [][2]int{{1920, 1080}, {1366, 768}, {390, 844}, {1536, 864}, {2560, 1440}, {414, 896}, {412, 915}}
	sdkAgent = "beacon-sdk-go/1.8.2 (linux; amd64)"
)

const padAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// seqEstimate is the digits budgeted for the seq hole when sizing.
const seqEstimate = 5

// newTraffic generates a run's traffic deterministically from c.Seed.
func newTraffic(rid string, c Config) *traffic {
	rng := rand.New(rand.NewPCG(uint64(c.Seed), 0x6265616367617465))
	tr := &traffic{rid: rid, batchEvents: c.BatchEvents, sdkUA: []byte(sdkAgent), meanBytes: c.EventBytes}
	tr.uids = make([]string, c.Keys)
	for i := range tr.uids {
		// UUID-shaped, like most SDKs' user ids.
		a, b := rng.Uint64(), rng.Uint64()
		tr.uids[i] = fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", uint32(a>>32), uint16(a>>16), uint16(a)&0xfff, uint16(b>>48)&0xfff, b&0xffffffffffff)
	}
	uidLen := len(tr.uids[0])
	fixedHoles := uidLen + seqEstimate + 13 // 13: digits of a unix-ms timestamp
	for _, target := range sizesAround(rng, c.EventBytes, templatesPerKind) {
		tr.pixels = append(tr.pixels, pixelTemplate(rng, rid, target-fixedHoles))
		tr.events = append(tr.events, eventTemplate(rng, rid, target-fixedHoles))
	}
	tr.kinds = kindCycle(rng, c.Mix)
	return tr
}

// sizesAround spreads n sizes evenly over [mean/2, 3*mean/2], in random
// order: a spread like real events' (short page views, long commerce
// events) whose mean is exactly the configured one, which random draws
// from 512 templates would miss by a few percent.
func sizesAround(rng *rand.Rand, mean, n int) []int {
	sizes := make([]int, n)
	for i := range sizes {
		sizes[i] = mean/2 + (2*i+1)*mean/(2*n)
	}
	rng.Shuffle(n, func(i, j int) { sizes[i], sizes[j] = sizes[j], sizes[i] })
	return sizes
}

// page is where one event comes from: site, page, referrer, session,
// event name, screen and browser.
type page struct {
	site, url, ref, sess, ev string
	sw, sh                   int
	ua                       string
}

// drawPage draws the context of one event.
func drawPage(rng *rand.Rand) page {
	site := sites[rng.IntN(len(sites))]
	p := page{
		site: site,
		url:  "https://" + site + paths[rng.IntN(len(paths))],
		sess: fmt.Sprintf("s%016x", rng.Uint64()),
		ev:   events[rng.IntN(len(events))],
		ua:   userAgents[rng.IntN(len(userAgents))],
	}
	switch rng.IntN(3) {
	case 0: // direct visit
	case 1:
		p.ref = "https://www.google.com/search?q=" + url.QueryEscape(site) + "&hl=en"
	case 2:
		p.ref = "https://" + site + paths[rng.IntN(len(paths))]
	}
	s := screens[rng.IntN(len(screens))]
	p.sw, p.sh = s[0], s[1]
	return p
}

func pad(rng *rand.Rand, n int) string {
	if n <= 0 {
		return ""
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = padAlphabet[rng.IntN(len(padAlphabet))]
	}
	return string(b)
}

// pixelTemplate is a tracking pixel's query string, padded so that the
// fixed parts come to budget bytes.
func pixelTemplate(rng *rand.Rand, rid string, budget int) template {
	p := drawPage(rng)
	b := &templateBuilder{}
	b.lit("sid=" + url.QueryEscape(p.site) + "&url=" + url.QueryEscape(p.url))
	if p.ref != "" {
		b.lit("&ref=" + url.QueryEscape(p.ref))
	}
	b.lit("&uid=").hole(holeUID)
	b.lit("&sess=" + p.sess + "&ev=" + p.ev + "&sw=" + strconv.Itoa(p.sw) + "&sh=" + strconv.Itoa(p.sh))
	b.lit("&ts=").hole(holeTS)
	b.lit("&rid=" + rid + "&seq=").hole(holeSeq)
	b.lit("&pad=")
	t := b.done()
	last := len(t.parts) - 1
	t.parts[last] = append(t.parts[last], pad(rng, budget-t.fixedLen())...)
	t.referer, t.origin, t.ua = []byte(p.url), []byte("https://"+p.site), []byte(p.ua)
	return t
}

// eventTemplate is one JSON event object. rid and seq come first so the
// read-back finds them without parsing the whole object.
func eventTemplate(rng *rand.Rand, rid string, budget int) template {
	p := drawPage(rng)
	b := &templateBuilder{}
	b.lit(`{"rid":"` + rid + `","seq":`).hole(holeSeq)
	b.lit(`,"user_id":"`).hole(holeUID)
	b.lit(`","session_id":"` + p.sess + `","event":"` + p.ev + `","ts":`).hole(holeTS)
	// The generated strings hold no '"' or '\\', so they need no escaping.
	b.lit(`,"site":"` + p.site + `","url":"` + p.url + `","referrer":"` + p.ref + `"`)
	b.lit(`,"screen":{"w":` + strconv.Itoa(p.sw) + `,"h":` + strconv.Itoa(p.sh) + `},"pad":"`)
	t := b.done()
	const closing = `"}`
	t.parts[len(t.parts)-1] = append(t.parts[len(t.parts)-1], pad(rng, budget-t.fixedLen()-len(closing))+closing...)
	t.referer, t.origin, t.ua = []byte(p.url), []byte("https://"+p.site), []byte(p.ua)
	return t
}

// kindCycle lays the mix out as a cycle of request kinds in random
// order, so every stretch of requests has about the mix's shares.
func kindCycle(rng *rand.Rand, m Mix) []kind {
	g := gcd(gcd(m.Pixel, m.Beacon), m.Batch)
	var ks []kind
	for k, w := range [numKinds]int{m.Pixel, m.Beacon, m.Batch} {
		for i := 0; i < w/g; i++ {
			ks = append(ks, kind(k))
		}
	}
	rng.Shuffle(len(ks), func(i, j int) { ks[i], ks[j] = ks[j], ks[i] })
	return ks
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// eventsPerRequest is the mean number of events one request carries.
func (tr *traffic) eventsPerRequest() float64 {
	n := 0
	for _, k := range tr.kinds {
		if k == kindBatch {
			n += tr.batchEvents
		} else {
			n++
		}
	}
	return float64(n) / float64(len(tr.kinds))
}
