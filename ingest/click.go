package ingest

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/beacongate/beacongate/ingest/form"
	"github.com/beacongate/beacongate/ingest/record"
	"github.com/beacongate/beacongate/internal/status"
)

var (
	errNoTarget         = status.New(http.StatusBadRequest, "redirect_missing", "the click redirect needs a target: /r?u=<url>")
	errTargetNotAllowed = status.New(http.StatusBadRequest, "redirect_not_allowed", "the redirect target is not an http(s) URL on an allowed host (-http.redirect-hosts)")
)

// endpointClick answers GET /r?u=<url>&...: it records the click
// (KIND_CLICK, every parameter kept) and answers 302 to u, but only when u
// is an http(s) URL whose host is on the allow-list: the gateway must
// never be an open redirect that phishing links can borrow.
var endpointClick = endpoint{route: routeClick, kind: record.KindClick, read: (*Server).readClick, answer: answerRedirect}

// readClick checks the redirect target before the click is recorded.
func (s *Server) readClick(sc *scratch) error {
	var err error
	sc.target, err = s.redirectTarget(form.Get(sc.b.Params, "u"))
	return err
}

func answerRedirect(sc *scratch) int {
	h := &sc.ctx.Response.Header
	h.SetCanonical(hdrLocation, []byte(sc.target))
	h.SetCanonical(hdrCacheCtl, valNoStore)
	sc.ctx.SetStatusCode(fasthttp.StatusFound)
	return fasthttp.StatusFound
}

// redirectTarget checks u and returns it in the canonical form that goes
// into Location (url.URL.String escapes what could split a header).
func (s *Server) redirectTarget(u []byte) (string, error) {
	if len(u) == 0 {
		return "", errNoTarget
	}
	t, err := url.Parse(string(u))
	if err != nil || (t.Scheme != "http" && t.Scheme != "https") || t.User != nil || t.Host == "" {
		return "", errTargetNotAllowed
	}
	host := strings.ToLower(t.Hostname())
	for _, h := range s.cfg.RedirectHosts {
		h = strings.ToLower(h)
		if host == strings.TrimPrefix(h, ".") || (strings.HasPrefix(h, ".") && strings.HasSuffix(host, h)) {
			return t.String(), nil
		}
	}
	return "", errTargetNotAllowed
}
