package ingest

import (
	"crypto/subtle"
	"net/http"

	"github.com/beacongate/beacongate/ingest/form"
	"github.com/beacongate/beacongate/ingest/record"
	"github.com/beacongate/beacongate/internal/status"
)

// Site allow-list and write keys (docs/security.md). With Config.Sites set, every
// recording request names its site in the sid query parameter and, for a
// site with a write key, proves it with the X-Beacon-Key header or the key
// query parameter. Browser snippets cannot keep a secret, so their sites
// are listed without a key: the list then only stops unknown sids.

var (
	errUnknownSite = status.New(http.StatusForbidden, "unknown_site", "the sid query parameter names no site this gateway accepts")
	errBadWriteKey = status.New(http.StatusForbidden, "bad_write_key", "missing or wrong write key for this site (X-Beacon-Key header or key parameter)")
)

const (
	paramSite = "sid"
	paramKey  = "key"
)

// checkSite applies the allow-list to the parsed query parameters.
func (s *Server) checkSite(sc *scratch) error {
	if s.sites == nil {
		return nil
	}
	sid := form.Get(sc.params, paramSite)
	if done, err := s.checkSnowplowRequest(sc); done {
		return err // a Snowplow request names its site in aid (snowplow.go)
	}
	if len(sid) == 0 {
		return errUnknownSite
	}
	want, ok := s.sites[string(sid)]
	if !ok {
		return errUnknownSite
	}
	if len(want) == 0 {
		return nil
	}
	got := sc.ctx.Request.Header.PeekBytes(hdrBeaconKey)
	if len(got) == 0 {
		got = form.Get(sc.params, paramKey)
	}
	if subtle.ConstantTimeCompare(want, got) != 1 {
		return errBadWriteKey
	}
	return nil
}

// dropKeyParams removes the write key from the parameters in place, so it
// never reaches a record.
func dropKeyParams(params []record.Param) []record.Param {
	out := params[:0]
	for _, p := range params {
		if string(p.Name) != paramKey {
			out = append(out, p)
		}
	}
	clear(params[len(out):])
	return out
}
