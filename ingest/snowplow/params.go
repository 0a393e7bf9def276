package snowplow

import (
	"bytes"
	"encoding/base64"
	"unicode/utf8"

	"github.com/beacongate/beacongate/ingest/event"
	"github.com/beacongate/beacongate/ingest/form"
	"github.com/beacongate/beacongate/ingest/record"
)

// AppendEvent appends the parameters of ev, one element of a tp2 body's
// data array as Events gives it, to dst, then normalizes them (Normalize).
// String values are unescaped into buf; numbers, true and false are taken
// as their text, null members are left out, an object or array value is
// ErrNotString. The event must carry e, p and tv (ErrMissingField).
func AppendEvent(dst []record.Param, buf []byte, ev []byte) ([]record.Param, []byte, error) {
	n := len(dst)
	dst, buf, bad := event.AppendParams(dst, buf, ev)
	if bad >= 0 {
		return dst, buf, ErrNotString.At(bad, "")
	}
	if !Tracked(dst[n:]) {
		return dst, buf, ErrMissingField
	}
	return Normalize(dst, n, buf)
}

// Tracked reports whether params hold a tracker's event: e, p and tv.
func Tracked(params []record.Param) bool {
	return len(form.Get(params, ParamEvent)) > 0 && len(form.Get(params, ParamPlatform)) > 0 &&
		len(form.Get(params, ParamVersion)) > 0
}

// Normalize decodes the base64 forms of params[from:] in place: ue_px
// becomes ue_pr and cx becomes co, their JSON decoded into buf, so a
// consumer reads self-describing events and contexts one way whatever
// the tracker's encodeBase64 setting. Trackers send URL-safe base64
// without padding; padded and standard-alphabet base64 are accepted too.
// The decoded text must be a valid UTF-8 JSON object (ErrBadBase64).
func Normalize(params []record.Param, from int, buf []byte) ([]record.Param, []byte, error) {
	for i := from; i < len(params); i++ {
		p := &params[i]
		var plain string
		switch string(p.Name) {
		case "ue_px":
			plain = "ue_pr"
		case "cx":
			plain = "co"
		default:
			continue
		}
		var err error
		n := len(buf)
		if buf, err = appendBase64(buf, p.Value); err != nil {
			return params, buf, err
		}
		p.Name = nameBytes(plain)
		p.Value = buf[n:len(buf):len(buf)]
	}
	return params, buf, nil
}

// Names as byte slices made once: a Param borrows its name.
var (
	nameUEPR = []byte("ue_pr")
	nameCO   = []byte("co")
)

func nameBytes(s string) []byte {
	if s == "ue_pr" {
		return nameUEPR
	}
	return nameCO
}

// appendBase64 appends the decoding of s to dst and checks that it is a
// UTF-8 JSON object.
func appendBase64(dst, s []byte) ([]byte, error) {
	s = bytes.TrimRight(s, "=")
	enc := base64.RawURLEncoding
	if bytes.ContainsAny(s, "+/") {
		enc = base64.RawStdEncoding
	}
	n := len(dst)
	need := enc.DecodedLen(len(s))
	if cap(dst)-n < need {
		grown := make([]byte, n, n+need+n/2) // grows once per buffer lifetime: the pooled buffer keeps it
		copy(grown, dst)
		dst = grown
	}
	m, err := enc.Decode(dst[n:n+need], s)
	if err != nil {
		return dst[:n], ErrBadBase64
	}
	dst = dst[:n+m]
	dec := dst[n:]
	if !utf8.Valid(dec) {
		return dst[:n], ErrBadBase64
	}
	if _, err := event.ValidateObject(dec, event.Limits{MaxEventBytes: len(dec) + 1}); err != nil {
		return dst[:n], ErrBadBase64
	}
	return dst, nil
}
