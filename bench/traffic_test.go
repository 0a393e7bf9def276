package bench

import (
	"encoding/json"
	"math"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// render fills a template as a typical request would: a 5-digit seq,
// a current timestamp.
func render(t *template, tr *traffic) []byte {
	return t.appendTo(nil, tr.uids[0], 12345, time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC).UnixMilli())
}

func TestEventSizesAroundTheMean(t *testing.T) {
	for _, mean := range []int{800, 2048} {
		c := Config{EventBytes: mean}.withDefaults()
		tr := newTraffic("0123456789ab", c)
		for name, ts := range map[string][]template{"pixel": tr.pixels, "json": tr.events} {
			sum, lo, hi := 0, math.MaxInt, 0
			for i := range ts {
				n := len(render(&ts[i], tr))
				sum += n
				lo, hi = min(lo, n), max(hi, n)
			}
			got := float64(sum) / float64(len(ts))
			if math.Abs(got-float64(mean))/float64(mean) > 0.03 {
				t.Errorf("%s events, mean %d: got mean %.0f B, want within 3%%", name, mean, got)
			}
			// Spread ±50%, a few bytes of slack for the holes' lengths.
			if lo < mean/2-10 || hi > mean*3/2+10 || hi-lo < mean/2 {
				t.Errorf("%s events, mean %d: sizes %d..%d, want spread over about [%d, %d]", name, mean, lo, hi, mean/2, mean*3/2)
			}
		}
	}
}

func TestPixelQueryHasRealisticFields(t *testing.T) {
	tr := newTraffic("0123456789ab", Config{}.withDefaults())
	for i := range tr.pixels {
		q, err := url.ParseQuery(string(render(&tr.pixels[i], tr)))
		if err != nil {
			t.Fatalf("pixel %d: %v", i, err)
		}
		for _, f := range []string{"sid", "url", "uid", "sess", "ev", "sw", "sh", "ts", "rid", "seq", "pad"} {
			if q.Get(f) == "" && f != "pad" {
				t.Fatalf("pixel %d lacks %s: %v", i, f, q)
			}
		}
		if !strings.HasPrefix(q.Get("url"), "https://"+q.Get("sid")+"/") {
			t.Fatalf("pixel %d: url %q is not a page of site %q", i, q.Get("url"), q.Get("sid"))
		}
		if q.Get("rid") != "0123456789ab" || q.Get("seq") != "12345" || q.Get("uid") != tr.uids[0] {
			t.Fatalf("pixel %d: rid %q seq %q uid %q", i, q.Get("rid"), q.Get("seq"), q.Get("uid"))
		}
		if len(tr.pixels[i].ua) == 0 || len(tr.pixels[i].referer) == 0 {
			t.Fatalf("pixel %d has no User-Agent or Referer", i)
		}
	}
}

func TestJSONEventsAreValidAndCarryTheAccountingFields(t *testing.T) {
	tr := newTraffic("0123456789ab", Config{Preset: "2kb"}.withDefaults())
	for i := range tr.events {
		b := render(&tr.events[i], tr)
		var ev map[string]any
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatalf("event %d is not JSON: %v\n%s", i, err, b)
		}
		if ev["rid"] != "0123456789ab" || ev["seq"] != 12345.0 || ev["user_id"] != tr.uids[0] || ev["event"] == "" || ev["url"] == "" {
			t.Fatalf("event %d: %v", i, ev)
		}
		uid, seq, rid, ok := scanJSONEvent(b)
		if !ok || uid != tr.uids[0] || seq != 12345 || rid != "0123456789ab" {
			t.Fatalf("event %d: fast scan got %q %d %q %v", i, uid, seq, rid, ok)
		}
	}
}

// sentEvent is one event read out of a prepared request.
type sentEvent struct {
	kind kind
	uid  string
	seq  uint64
}

// eventsOf reads the events out of the worker's prepared request.
func eventsOf(t *testing.T, w *worker, k kind) []sentEvent {
	t.Helper()
	switch k {
	case kindPixel:
		q, err := url.ParseQuery(string(w.req.URI().QueryString()))
		if err != nil || string(w.req.URI().Path()) != "/i" || !w.req.Header.IsGet() {
			t.Fatalf("pixel request %s %s: %v", w.req.Header.Method(), w.req.URI(), err)
		}
		seq, _ := strconv.ParseUint(q.Get("seq"), 10, 64)
		return []sentEvent{{k, q.Get("uid"), seq}}
	case kindBeacon:
		if string(w.req.URI().Path()) != "/i" || !w.req.Header.IsPost() || !strings.HasPrefix(string(w.req.Header.ContentType()), "text/plain") {
			t.Fatalf("beacon request %s %s %s", w.req.Header.Method(), w.req.URI(), w.req.Header.ContentType())
		}
		var ev struct {
			UserID string `json:"user_id"`
			Seq    uint64 `json:"seq"`
		}
		if err := json.Unmarshal(w.req.Body(), &ev); err != nil {
			t.Fatal(err)
		}
		return []sentEvent{{k, ev.UserID, ev.Seq}}
	default:
		if string(w.req.URI().Path()) != "/batch" || string(w.req.Header.ContentType()) != "application/json" {
			t.Fatalf("batch request %s %s", w.req.URI(), w.req.Header.ContentType())
		}
		var evs []struct {
			UserID string `json:"user_id"`
			Seq    uint64 `json:"seq"`
		}
		if err := json.Unmarshal(w.req.Body(), &evs); err != nil {
			t.Fatal(err)
		}
		var out []sentEvent
		for _, ev := range evs {
			out = append(out, sentEvent{k, ev.UserID, ev.Seq})
		}
		return out
	}
}

func TestWorkersSendEachKeysEventsInSequence(t *testing.T) {
	c := Config{Conns: 4, Keys: 10, BatchEvents: 5}.withDefaults()
	tr := newTraffic("0123456789ab", c)
	keys := make([]*keyState, len(tr.uids))
	for i, uid := range tr.uids {
		keys[i] = &keyState{uid: uid}
	}
	owner := map[string]int{}
	last := map[string]uint64{}
	kinds := map[kind]int{}
	events := 0
	for id := 0; id < c.Conns; id++ {
		w := &worker{id: id, tr: tr, host: []byte("127.0.0.1:8080")}
		for k := id; k < len(keys); k += c.Conns {
			w.keys = append(w.keys, keys[k])
		}
		for i := 0; i < 500; i++ {
			k := w.prepare(time.Now())
			kinds[k]++
			evs := eventsOf(t, w, k)
			if len(evs) != len(w.pending) {
				t.Fatalf("%s request carries %d events, pending %d", k, len(evs), len(w.pending))
			}
			for j, ev := range evs {
				events++
				if o, ok := owner[ev.uid]; ok && o != id {
					t.Fatalf("key %s sent by workers %d and %d", ev.uid, o, id)
				}
				owner[ev.uid] = id
				if ev.seq != last[ev.uid]+1 {
					t.Fatalf("key %s: seq %d after %d", ev.uid, ev.seq, last[ev.uid])
				}
				last[ev.uid] = ev.seq
				if w.pending[j].key.uid != ev.uid || w.pending[j].seq != ev.seq {
					t.Fatalf("pending %v does not match sent %v", w.pending[j], ev)
				}
			}
		}
	}
	if len(owner) != c.Keys {
		t.Fatalf("%d keys used, want all %d", len(owner), c.Keys)
	}
	// The default mix, by request: 60% pixels, 30% beacons, 10% batches.
	total := kinds[kindPixel] + kinds[kindBeacon] + kinds[kindBatch]
	for k, want := range map[kind]float64{kindPixel: .6, kindBeacon: .3, kindBatch: .1} {
		if got := float64(kinds[k]) / float64(total); math.Abs(got-want) > 0.02 {
			t.Errorf("%s share %.3f, want %.2f", k, got, want)
		}
	}
	if want := tr.eventsPerRequest() * float64(total); math.Abs(float64(events)-want)/want > 0.02 {
		t.Errorf("%d events for %d requests, want about %.0f", events, total, want)
	}
}

func TestParseMix(t *testing.T) {
	m, err := ParseMix("pixel=100")
	if err != nil || m != (Mix{Pixel: 100}) {
		t.Fatalf("pixel=100: %v %v", m, err)
	}
	m, err = ParseMix(" pixel=6, beacon=3 ,batch=1")
	if err != nil || m != (Mix{6, 3, 1}) {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range []string{"", "pixel=0", "pixel", "pixel=-1", "gif=3", "pixel=x"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) accepted", bad)
		}
	}
	if got := kindCycle(nil, Mix{Pixel: 100}); len(got) != 1 || got[0] != kindPixel {
		t.Fatalf("kindCycle(pixel=100) = %v", got)
	}
}

func TestConfigZeroValueIsValidAndBadOnesAreRefused(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	if err := (Config{Baseline: true, Rounds: 4, Duration: 20 * time.Second}).Validate(); err != nil {
		t.Fatalf("4 rounds of 5s: %v", err)
	}
	c := Config{}.withDefaults()
	if c.Conns != 64 || c.Duration != 10*time.Second || c.EventBytes != 800 || c.BatchEvents != 20 || c.Mix != (Mix{60, 30, 10}) {
		t.Fatalf("defaults: %+v", c)
	}
	if c := (Config{Preset: "2kb"}).withDefaults(); c.EventBytes != 2048 || c.Mix != (Mix{Batch: 100}) {
		t.Fatalf("2kb preset: %+v", c)
	}
	for name, bad := range map[string]Config{
		"open without rate": {Mode: "open"},
		"unknown mode":      {Mode: "burst"},
		"unknown preset":    {Preset: "1kb"},
		"fewer keys":        {Conns: 10, Keys: 5},
		"https":             {URL: "https://127.0.0.1:8080"},
		"tiny events":       {EventBytes: 10},
		"negative mix":      {Mix: Mix{Pixel: -1, Beacon: 2}},
		"rounds alone":      {Rounds: 4},
		"rounds by count":   {Baseline: true, Rounds: 4, Requests: 1000},
		"slices under 1s":   {Baseline: true, Rounds: 4, Duration: 3 * time.Second},
		"negative rounds":   {Baseline: true, Rounds: -1},
		"nodes unspawned":   {BrokerNodes: 3},
		"nodes embedded":    {Spawn: true, EmbeddedBroker: true, BrokerNodes: 3},
		"too many nodes":    {Spawn: true, BrokerNodes: 17},
		"negative nodes":    {Spawn: true, BrokerNodes: -1},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestOnlyLoopbackTargets(t *testing.T) {
	for _, h := range []string{"127.0.0.1", "::1", "localhost"} {
		if err := checkLoopback(t.Context(), h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	// 192.0.2.0/24 is TEST-NET-1: an address literal, never resolved.
	if err := checkLoopback(t.Context(), "192.0.2.10"); err == nil || !strings.Contains(err.Error(), "allow-remote") {
		t.Fatalf("remote host accepted or unclear error: %v", err)
	}
}
