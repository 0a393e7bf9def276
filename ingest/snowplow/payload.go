package snowplow

import (
	"bytes"

	"github.com/beacongate/beacongate/ingest/event"
)

// envelopeDepth is what the envelope adds to an event's depth: the
// payload_data object and its data array.
const envelopeDepth = 2

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
	schema, _, ok := event.Field(env, "schema", nil)
	if !ok || !bytes.HasPrefix(schema, []byte(PayloadSchemaPrefix)) {
		// An escaped schema string is unescaped into a new slice here
		// (scratch nil): no tracker escapes it, so that costs nothing.
		return ErrNotPayloadData
	}
	data, ok := event.RawField(env, "data")
	if !ok || data[0] != '[' {
		return ErrNotPayloadData
	}
	return event.Split(data, lim, fn)
}
