package snowplow

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/beacongate/beacongate/ingest/event"
	"github.com/beacongate/beacongate/ingest/record"
)

const schema = `"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"`

func body(events ...string) string {
	return `{"schema":` + schema + `,"data":[` + strings.Join(events, ",") + `]}`
}

type split struct {
	evs  []string
	errs []string // reason per element, "" when accepted
}

func collect(t *testing.T, b string, lim event.Limits) (split, error) {
	t.Helper()
	var s split
	err := Events([]byte(b), lim, func(_ int, ev []byte, err error) bool {
		s.evs = append(s.evs, string(ev))
		r := ""
		if err != nil {
			r = reason(err)
		}
		s.errs = append(s.errs, r)
		return true
	})
	return s, err
}

func reason(err error) string {
	var r interface{ Reason() string }
	if errors.As(err, &r) {
		return r.Reason()
	}
	return err.Error()
}

func TestEvents(t *testing.T) {
	ev1 := `{"e":"pv","p":"web","tv":"js-3"}`
	ev2 := `{"e":"se","p":"srv","tv":"node-3","se_ca":"c"}`
	s, err := collect(t, body(ev1, ev2), event.Limits{})
	if err != nil || len(s.evs) != 2 || s.evs[0] != ev1 || s.evs[1] != ev2 || s.errs[0] != "" || s.errs[1] != "" {
		t.Fatalf("two events: %+v %v", s, err)
	}
	// Every 1-0-x revision, members in any order, whitespace.
	s, err = collect(t, " {\"data\" : [ "+ev1+" ] , \"schema\":\"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-0\"}\n", event.Limits{})
	if err != nil || len(s.evs) != 1 || s.evs[0] != ev1 {
		t.Fatalf("reordered envelope: %+v %v", s, err)
	}
	// An escaped schema, as PHP's json_encode writes slashes.
	s, err = collect(t, `{"schema":"iglu:com.snowplowanalytics.snowplow\/payload_data\/jsonschema\/1-0-4","data":[`+ev1+`]}`, event.Limits{})
	if err != nil || len(s.evs) != 1 {
		t.Fatalf("escaped schema: %+v %v", s, err)
	}
	// One bad element does not sink the others.
	s, err = collect(t, body(ev1, `"x"`, `{"e":"pv","big":"`+strings.Repeat("a", 100)+`"}`, ev2), event.Limits{MaxEventBytes: 64})
	if err != nil || len(s.evs) != 4 || s.errs[0] != "" || s.errs[1] != "not_object" || s.errs[2] != "event_too_large" || s.errs[3] != "" {
		t.Fatalf("bad elements: %+v %v", s, err)
	}
	for _, tc := range []struct{ name, body, reason string }{
		{"not json", `{"schema":`, "invalid_json"},
		{"array", `[` + ev1 + `]`, "not_payload_data"},
		{"no schema", `{"data":[` + ev1 + `]}`, "not_payload_data"},
		{"other schema", `{"schema":"iglu:com.acme/payload_data/jsonschema/1-0-4","data":[]}`, "not_payload_data"},
		{"schema 2-0-0", `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/2-0-0","data":[]}`, "not_payload_data"},
		{"schema not string", `{"schema":1,"data":[]}`, "not_payload_data"},
		{"no data", `{"schema":` + schema + `}`, "not_payload_data"},
		{"escaped other schema", `{"schema":"iglu:com.acme\/payload_data\/jsonschema\/1-0-4","data":[]}`, "not_payload_data"},
		{"empty schema", `{"schema":"","data":[]}`, "not_payload_data"},
		{"data object", `{"schema":` + schema + `,"data":{}}`, "not_payload_data"},
		{"trailing", body(ev1) + `x`, "invalid_json"},
		{"invalid utf8", body(`{"e":"` + "\xff" + `"}`), "invalid_utf8"},
		{"too many", body(ev1, ev1, ev1), "too_many_events"},
	} {
		_, err := collect(t, tc.body, event.Limits{MaxEvents: 2})
		if err == nil || reason(err) != tc.reason {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.reason)
		}
	}
}

func params(ps []record.Param) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('&')
		}
		b.Write(p.Name)
		b.WriteByte('=')
		b.Write(p.Value)
	}
	return b.String()
}

func TestAppendEvent(t *testing.T) {
	ue := `{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":"iglu:com.acme/x/jsonschema/1-0-0","data":{"k":"vé"}}}`
	co := `{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1","data":[]}`
	raw := base64.RawURLEncoding.EncodeToString([]byte(ue))
	padded := base64.URLEncoding.EncodeToString([]byte(co))
	std := base64.StdEncoding.EncodeToString([]byte(ue + "  ?>>"))
	for _, tc := range []struct{ name, ev, want, reason string }{
		{"strings", `{"e":"pv","p":"web","tv":"js-3","url":"http://x/?a=1&b=2","uid":"u\u00e9\n"}`, "e=pv&p=web&tv=js-3&url=http://x/?a=1&b=2&uid=ué\n", ""},
		{"numbers and literals", `{"e":"pv","p":"web","tv":"1","dtm":1700000000000,"cookie":true,"x":null}`, "e=pv&p=web&tv=1&dtm=1700000000000&cookie=true", ""},
		{"escaped name", `{"\u0065":"pv","p":"web","tv":"1"}`, "e=pv&p=web&tv=1", ""},
		{"ue_px raw", `{"e":"ue","p":"srv","tv":"1","ue_px":"` + raw + `"}`, "e=ue&p=srv&tv=1&ue_pr=" + ue, ""},
		{"cx padded", `{"e":"pv","p":"srv","tv":"1","cx":"` + padded + `"}`, "e=pv&p=srv&tv=1&co=" + co, ""},
		{"std alphabet", `{"e":"ue","p":"srv","tv":"1","ue_px":"` + std + `"}`, "", "bad_base64"}, // not a JSON object after decoding
		{"bad base64", `{"e":"ue","p":"srv","tv":"1","ue_px":"!!!"}`, "", "bad_base64"},
		{"base64 of non-json", `{"e":"ue","p":"srv","tv":"1","cx":"` + base64.RawURLEncoding.EncodeToString([]byte("nope")) + `"}`, "", "bad_base64"},
		{"base64 of invalid utf8", `{"e":"ue","p":"srv","tv":"1","cx":"` + base64.RawURLEncoding.EncodeToString([]byte("{\"a\":\"\xff\"}")) + `"}`, "", "bad_base64"},
		{"object value", `{"e":"pv","p":"web","tv":"1","co":{"a":1}}`, "", "not_string"},
		{"array value", `{"e":"pv","p":"web","tv":"1","co":[]}`, "", "not_string"},
		{"no e", `{"p":"web","tv":"1"}`, "", "missing_tracker_field"},
		{"no tv", `{"e":"pv","p":"web"}`, "", "missing_tracker_field"},
		{"empty p", `{"e":"pv","p":"","tv":"1"}`, "", "missing_tracker_field"},
	} {
		ps, _, err := AppendEvent(nil, nil, []byte(tc.ev))
		switch {
		case tc.reason != "":
			if err == nil || reason(err) != tc.reason {
				t.Errorf("%s: got %v (%s), want %s", tc.name, err, params(ps), tc.reason)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case params(ps) != tc.want:
			t.Errorf("%s:\n got %s\nwant %s", tc.name, params(ps), tc.want)
		}
	}
	// The standard alphabet decodes when the text is a JSON object.
	ps, _, err := AppendEvent(nil, nil, []byte(`{"e":"ue","p":"srv","tv":"1","ue_px":"`+base64.StdEncoding.EncodeToString([]byte(`{"a":"~~~???"}`))+`"}`))
	if err != nil || params(ps) != `e=ue&p=srv&tv=1&ue_pr={"a":"~~~???"}` {
		t.Errorf("standard alphabet: %v %s", err, params(ps))
	}
}

// TestAppendEventKeepsEarlier checks that params decoded before a buffer
// grew still read right: they borrow the old array.
func TestAppendEventKeepsEarlier(t *testing.T) {
	q := []record.Param{{Name: []byte("sid"), Value: []byte("s1")}}
	buf := make([]byte, 0, 4)
	ue := base64.RawURLEncoding.EncodeToString([]byte(`{"k":"` + strings.Repeat("v", 300) + `"}`))
	ps, _, err := AppendEvent(q, buf, []byte(`{"e":"ue","p":"srv","tv":"1","a\u0062":"x\ty","ue_px":"`+ue+`","cx":"`+ue+`"}`))
	want := "sid=s1&e=ue&p=srv&tv=1&ab=x\ty&ue_pr={\"k\":\"" + strings.Repeat("v", 300) + "\"}&co={\"k\":\"" + strings.Repeat("v", 300) + "\"}"
	if err != nil || params(ps) != want {
		t.Fatalf("%v %s", err, params(ps))
	}
}

func TestAllocations(t *testing.T) {
	ue := base64.RawURLEncoding.EncodeToString([]byte(`{"schema":"iglu:a/b/jsonschema/1-0-0","data":{"k":"v"}}`))
	b := []byte(body(`{"e":"ue","p":"web","tv":"js-3","eid":"3f6a","u\u0069d":"u1","ue_px":"`+ue+`"}`, `{"e":"pv","p":"web","tv":"js-3","url":"http://x"}`))
	ps := make([]record.Param, 0, 32)
	buf := make([]byte, 0, 4096)
	n := testing.AllocsPerRun(100, func() {
		err := Events(b, event.Limits{}, func(_ int, ev []byte, err error) bool {
			if err == nil {
				ps, buf, err = AppendEvent(ps[:0], buf[:0], ev)
			}
			if err != nil {
				t.Fatal(err)
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per tp2 body, want 0", n)
	}
}

func BenchmarkTP2(b *testing.B) {
	ue := base64.RawURLEncoding.EncodeToString([]byte(`{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":"iglu:com.acme/click/jsonschema/1-0-0","data":{"target":"buy"}}}`))
	one := `{"e":"ue","p":"web","tv":"js-3.23.0","eid":"2d2b6c1c-5f2b-4c4e-9f3e-1f2e3d4c5b6a","aid":"shop","uid":"user-42","duid":"9c1f","dtm":"1765000000000","stm":"1765000000100","url":"https://shop.example/p/1","ue_px":"` + ue + `"}`
	evs := make([]string, 10)
	for i := range evs {
		evs[i] = one
	}
	body := []byte(body(evs...))
	ps := make([]record.Param, 0, 32)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		_ = Events(body, event.Limits{}, func(_ int, ev []byte, err error) bool {
			if err == nil {
				ps, buf, _ = AppendEvent(ps[:0], buf[:0], ev)
			}
			return true
		})
	}
}
