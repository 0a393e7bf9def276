package ingest

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/beacongate/beacongate/ingest/record"
)

var (
	requestsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "beacongate_http_requests_total",
		Help: "HTTP requests answered, by route and status code.",
	}, []string{"route", "status"})
	requestDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "beacongate_http_request_duration_seconds",
		Help:    "Time from request read to response written to the buffer, by route.",
		Buckets: prometheus.ExponentialBuckets(0.00002, 2.5, 12),
	}, []string{"route"})
	eventsAccepted = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "beacongate_events_accepted_total",
		Help: "Events handed to the producer, by kind (pixel, beacon, batch_event).",
	}, []string{"kind"})
	eventsRejected = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "beacongate_events_rejected_total",
		Help: "Requests or batch events rejected, by reason (the reason in the error response).",
	}, []string{"reason"})
	optOutsTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_privacy_opt_outs_total",
		Help: "Requests recorded without identifiers and IP because the client opted out.",
	})
	identitiesSet = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_identity_cookies_issued_total",
		Help: "New gateway-set browser ids (first visits, or expired cookies).",
	})
	panicsTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_http_panics_total",
		Help: "Handler panics recovered (answered 500). Any value above 0 is a bug.",
	})
)

// Label lookups are resolved once and cached, so counting on the hot path
// is an atomic add, not a label hash and map lookup (and no allocation).
var (
	requestCounters [numRoutes][600]atomic.Pointer[prometheus.Counter]
	durationObs     [numRoutes]prometheus.Observer
	acceptedByKind  [5]prometheus.Counter
	rejectedMu      sync.RWMutex
	rejectedByName  = map[string]prometheus.Counter{}
)

func init() {
	for r := route(0); r < numRoutes; r++ {
		durationObs[r] = requestDuration.WithLabelValues(routeNames[r])
	}
	acceptedByKind[record.KindPixel] = eventsAccepted.WithLabelValues("pixel")
	acceptedByKind[record.KindBeacon] = eventsAccepted.WithLabelValues("beacon")
	acceptedByKind[record.KindBatchEvent] = eventsAccepted.WithLabelValues("batch_event")
	acceptedByKind[record.KindClick] = eventsAccepted.WithLabelValues("click")
}

func countRequest(r route, status int) {
	if status < 100 || status >= 600 {
		status = 599
	}
	p := &requestCounters[r][status]
	c := p.Load()
	if c == nil {
		nc := requestsTotal.WithLabelValues(routeNames[r], strconv.Itoa(status))
		p.CompareAndSwap(nil, &nc)
		c = p.Load()
	}
	(*c).Inc()
}

func countRejected(reason string, n int) {
	rejectedMu.RLock()
	c := rejectedByName[reason]
	rejectedMu.RUnlock()
	if c == nil {
		// Reasons come from code, never from input, so the set is small.
		rejectedMu.Lock()
		if c = rejectedByName[reason]; c == nil {
			c = eventsRejected.WithLabelValues(reason)
			rejectedByName[reason] = c
		}
		rejectedMu.Unlock()
	}
	c.Add(float64(n))
}
