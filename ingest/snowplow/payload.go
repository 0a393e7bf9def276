package snowplow

import (
	"bytes"

	"github.com/beacongate/beacongate/ingest/event"
)

// envelopeDepth is what the envelope adds to an event's depth: the
// payload_data object and its data array.
const envelopeDepth = 2

// envelopeMembers are the members of payload_data the gateway reads.
var envelopeMembers = [2]string{"schema", "data"}

// Events splits a tp2 body, a payload_data envelope, into its events and
// calls fn with each element of data, in order, as event.Split does: ev is
// the element (a JSON object) or err says why that element was refused
// (too large, too deep, invalid UTF-8, not an object), and fn returns
// false to stop. lim bounds each event and their number; the envelope is
// validated as strict JSON as a whole first. The error is for the body:
// invalid JSON, or no payload_data schema, or data not an array; fn is
// not called then.
func Events(body []byte, lim event.Limits, fn func(i int, ev []byte, err error) bool) error {
	depth := lim.MaxDepth
	if depth <= 0 {
		depth = event.DefaultMaxDepth
	}
	env, err := event.ValidateObject(body, event.Limits{MaxDepth: depth + envelopeDepth, MaxEventBytes: len(body) + 1})
	if err != nil {
		if err == event.ErrNotObject {
			return ErrNotPayloadData
		}
		return err
	}
	var vals [2][]byte // one pass over the envelope for both members
	if !event.RawFields(env, envelopeMembers[:], vals[:]) {
		return ErrNotPayloadData
	}
	schema, data := vals[0], vals[1]
	if len(schema) < 2 || schema[0] != '"' {
		return ErrNotPayloadData
	}
	if s := schema[1 : len(schema)-1]; bytes.IndexByte(s, '\\') < 0 {
		if !bytes.HasPrefix(s, []byte(PayloadSchemaPrefix)) {
			return ErrNotPayloadData
		}
	} else if s, _, _ := event.Field([]byte(`{"s":`+string(schema)+`}`), "s", nil); !bytes.HasPrefix(s, []byte(PayloadSchemaPrefix)) {
		// An escaped schema ("iglu:com.snowplowanalytics.snowplow\/…",
		// as PHP's json_encode writes it) is unescaped the slow way: it is
		// rare.
		return ErrNotPayloadData
	}
	if len(data) == 0 || data[0] != '[' {
		return ErrNotPayloadData
	}
	return event.Split(data, lim, fn)
}
