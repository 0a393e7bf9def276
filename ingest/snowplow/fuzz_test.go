package snowplow

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/beacongate/beacongate/ingest/event"
)

// FuzzTP2 feeds arbitrary bodies through the tp2 decoder: it never panics,
// every error has a reason, every event Events hands out is a JSON
// object, and every parameter AppendEvent returns is valid UTF-8 and
// agrees with encoding/json's reading of the event.
func FuzzTP2(f *testing.F) {
	f.Add([]byte(body(`{"e":"pv","p":"web","tv":"js-3","url":"http://x"}`)))
	f.Add([]byte(body(`{"e":"ue","p":"srv","tv":"1","ue_px":"eyJhIjoxfQ"}`, `{"e":"pv","p":"web","tv":"1","cx":"eyJhIjoxfQ=="}`)))
	f.Add([]byte(body(`{"e":"pv","p":"web","tv":"1","n":1,"b":true,"z":null,"o":{}}`)))
	f.Add([]byte(`{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-0","data":[{"\u0065":"\ud83d\ude00"}]}`))
	f.Add([]byte(`{"data":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := event.Limits{MaxEvents: 50, MaxEventBytes: 4096, MaxDepth: 8}
		err := Events(b, lim, func(_ int, ev []byte, err error) bool {
			if err != nil {
				checkReason(t, err)
				return true
			}
			if !json.Valid(ev) || ev[0] != '{' {
				t.Fatalf("event %q is not a JSON object", ev)
			}
			ps, _, err := AppendEvent(nil, nil, ev)
			if err != nil {
				checkReason(t, err)
				return true
			}
			var m map[string]any
			dec := json.NewDecoder(bytes.NewReader(ev))
			dec.UseNumber() // JSON allows numbers no float64 holds (400 sevens)
			if err := dec.Decode(&m); err != nil {
				t.Fatalf("event %q: %v", ev, err)
			}
			last := map[string]string{} // encoding/json keeps a repeated member's last value
			for _, p := range ps {
				last[string(p.Name)] = string(p.Value)
			}
			for _, p := range ps {
				if !utf8.Valid(p.Name) || !utf8.Valid(p.Value) {
					t.Fatalf("param %q=%q is not valid UTF-8", p.Name, p.Value)
				}
				name := string(p.Name)
				if name == "ue_pr" || name == "co" {
					if !json.Valid(p.Value) {
						t.Fatalf("decoded %s %q is not JSON", name, p.Value)
					}
					continue
				}
				if s, ok := m[name].(string); ok && s != last[name] {
					t.Fatalf("param %s=%q, encoding/json reads %q (event %q)", name, p.Value, s, ev)
				}
			}
			return true
		})
		if err != nil {
			checkReason(t, err)
		}
	})
}

func checkReason(t *testing.T, err error) {
	t.Helper()
	var r interface{ Reason() string }
	if !errors.As(err, &r) || r.Reason() == "" {
		t.Fatalf("error without a reason: %v", err)
	}
}
