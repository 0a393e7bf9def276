package ingest

import (
	"bytes"
	"net/http"

	"github.com/beacongate/beacongate/ingest/event"
	"github.com/beacongate/beacongate/ingest/form"
	"github.com/beacongate/beacongate/ingest/record"
	"github.com/beacongate/beacongate/internal/status"
)

// One site per request (docs/security.md). The site allow-list checks the
// write key of the sid in the query; a second, different sid in the query,
// the form body or a JSON event would reach the record without its key
// (GET /i?sid=open&sid=keyed). So a request that acts on sites names one:
// every sid it carries must be the same, else 400 multiple_sites.

var errMultipleSites = status.New(http.StatusBadRequest, "multiple_sites", "the request names more than one site (sid in the query, the form body or a JSON event); a request is for one site")

// siteAware says whether the gateway acts on sid (allow-list or per-site
// limit); otherwise sid is a parameter like any other and is not checked.
func (s *Server) siteAware() bool { return s.sites != nil || s.siteLimit != nil }

// oneSite reports whether params carry at most one distinct sid value.
func oneSite(params []record.Param) bool {
	var first []byte
	seen := false
	for _, p := range params {
		if string(p.Name) != paramSite {
			continue
		}
		if !seen {
			first, seen = p.Value, true
		} else if !bytes.Equal(first, p.Value) {
			return false
		}
	}
	return true
}

// checkParamsSite applies oneSite to the request's parameters so far.
func (s *Server) checkParamsSite(sc *scratch) error {
	if s.siteAware() && !oneSite(sc.params) {
		return errMultipleSites
	}
	return nil
}

// checkEventSite refuses a JSON event whose top-level sid differs from the
// query's (an event may repeat the query's sid, or name one when the
// query names none and there is no allow-list, which then refused it).
// fields, if not nil, holds obj's members noted as it was validated
// (Server.noteFields), sid among them.
func (s *Server) checkEventSite(sc *scratch, obj []byte, fields *event.Fields) error {
	if !s.siteAware() {
		return nil
	}
	var v, jbuf []byte
	var ok bool
	if fields != nil && s.notedSite >= 0 {
		v, jbuf, ok = event.Value(fields.Vals[s.notedSite], sc.jbuf[:0])
	} else {
		v, jbuf, ok = event.Field(obj, paramSite, sc.jbuf[:0])
	}
	sc.jbuf = jbuf
	if !ok {
		return nil
	}
	if q := form.Get(sc.params, paramSite); q != nil && !bytes.Equal(q, v) {
		return errMultipleSites
	}
	return nil
}
