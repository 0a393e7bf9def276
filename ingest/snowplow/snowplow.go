// Package snowplow decodes the Snowplow tracker protocol: the tp2 POST
// body (a self-describing payload_data JSON whose data array holds one
// object of string parameters per event) and the tracker parameters of a
// GET, normalized so that a consumer reads every Snowplow event, GET or
// POST, from the record's params alone (docs/snowplow.md). It never
// allocates once the caller's buffers have grown.
package snowplow

import "github.com/beacongate/beacongate/ingest/internal/lex"

// Error is why a body or an event was rejected; Reason is the short
// reason of the 400 answer and the rejection counter's label.
type Error = lex.Error

// The sentinels, one per Reason.
var (
	ErrNotPayloadData = lex.Sentinel("snowplow", "not_payload_data", `body is not a payload_data envelope ({"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-*","data":[...]})`)
	ErrNotString      = lex.Sentinel("snowplow", "not_string", "an event parameter is an object or array, not a string")
	ErrMissingField   = lex.Sentinel("snowplow", "missing_tracker_field", "event lacks one of the tracker parameters e, p and tv")
	ErrBadBase64      = lex.Sentinel("snowplow", "bad_base64", "ue_px or cx is not URL-safe base64 of a UTF-8 JSON object")
)

// The tracker parameters the gateway reads.
const (
	ParamEvent    = "e"   // event type: pv, pp, se, ue, tr, ti
	ParamPlatform = "p"   // platform: web, srv, mob, ...
	ParamVersion  = "tv"  // tracker version
	ParamEventID  = "eid" // the tracker's event id (a UUID)
	ParamAppID    = "aid" // application id
	ParamUserID   = "uid" // the business user id
	ParamDomainID = "duid"
)

// PayloadSchemaPrefix is what the schema of a tp2 body starts with: every
// 1-0-x revision of payload_data has the same shape.
const PayloadSchemaPrefix = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-"
