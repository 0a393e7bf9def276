package record_test

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/beacongate/beacongate/ingest/record"
	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
)

// want is the generated message holding the values a consumer must read
// back from Append's output: b's values, strings made valid UTF-8.
func want(b *record.Beacon) *beaconv1.Beacon {
	s := func(v []byte) string { return strings.ToValidUTF8(string(v), "\uFFFD") }
	m := &beaconv1.Beacon{
		ReceivedAtUs:  b.ReceivedAtMicros,
		GatewayId:     s(b.GatewayID),
		RequestId:     s(b.RequestID),
		Kind:          beaconv1.Kind(b.Kind),
		Method:        s(b.Method),
		Host:          s(b.Host),
		Path:          s(b.Path),
		ClientIp:      b.ClientIP,
		UserAgent:     s(b.UserAgent),
		Referer:       s(b.Referer),
		Origin:        s(b.Origin),
		ContentType:   s(b.ContentType),
		Payload:       b.Payload,
		ShardKey:      s(b.ShardKey),
		BatchIndex:    b.BatchIndex,
		NetworkUserId: s(b.NetworkUserID),
		Protocol:      beaconv1.Protocol(b.Protocol),
		EventType:     s(b.EventType),
		EventId:       s(b.EventID),
		Site:          s(b.Site),
		Overflow:      b.Overflow,
	}
	for _, p := range b.Params {
		m.Params = append(m.Params, &beaconv1.Param{Name: s(p.Name), Value: s(p.Value)})
	}
	return m
}

// checkAppend appends b to nil and checks that the generated type decodes
// the wanted values from it, and that the bytes are exactly what
// deterministic proto.Marshal writes.
func checkAppend(t testing.TB, b *record.Beacon) {
	t.Helper()
	got := record.Append(nil, b)
	var dec beaconv1.Beacon
	if err := proto.Unmarshal(got, &dec); err != nil {
		t.Fatalf("proto.Unmarshal(Append(...)): %v\nencoding: %x", err, got)
	}
	w := want(b)
	if diff := diffBeacon(&dec, w); diff != "" {
		t.Errorf("decoded record differs from input:\n%s", diff)
	}
	det := proto.MarshalOptions{Deterministic: true}
	fromDecoded, err := det.Marshal(&dec)
	if err != nil {
		t.Fatalf("marshal decoded: %v", err)
	}
	if !bytes.Equal(got, fromDecoded) {
		t.Errorf("Append bytes differ from proto.Marshal of the decoded message:\nAppend:  %x\nMarshal: %x", got, fromDecoded)
	}
	fromWant, err := det.Marshal(w)
	if err != nil {
		t.Fatalf("marshal wanted: %v", err)
	}
	if !bytes.Equal(got, fromWant) {
		t.Errorf("Append bytes differ from proto.Marshal of the wanted message:\nAppend:  %x\nMarshal: %x", got, fromWant)
	}
}

// diffBeacon compares every field, so that a failure names the field.
func diffBeacon(got, want *beaconv1.Beacon) string {
	var d strings.Builder
	eq(&d, "received_at_us", got.GetReceivedAtUs(), want.GetReceivedAtUs())
	eq(&d, "gateway_id", got.GetGatewayId(), want.GetGatewayId())
	eq(&d, "request_id", got.GetRequestId(), want.GetRequestId())
	eq(&d, "kind", got.GetKind(), want.GetKind())
	eq(&d, "method", got.GetMethod(), want.GetMethod())
	eq(&d, "host", got.GetHost(), want.GetHost())
	eq(&d, "path", got.GetPath(), want.GetPath())
	eq(&d, "client_ip", string(got.GetClientIp()), string(want.GetClientIp()))
	eq(&d, "user_agent", got.GetUserAgent(), want.GetUserAgent())
	eq(&d, "referer", got.GetReferer(), want.GetReferer())
	eq(&d, "origin", got.GetOrigin(), want.GetOrigin())
	eq(&d, "content_type", got.GetContentType(), want.GetContentType())
	if eq(&d, "len(params)", len(got.GetParams()), len(want.GetParams())) {
		for i, p := range got.GetParams() {
			eq(&d, fmt.Sprint("params[", i, "].name"), p.GetName(), want.GetParams()[i].GetName())
			eq(&d, fmt.Sprint("params[", i, "].value"), p.GetValue(), want.GetParams()[i].GetValue())
		}
	}
	eq(&d, "payload", string(got.GetPayload()), string(want.GetPayload()))
	eq(&d, "shard_key", got.GetShardKey(), want.GetShardKey())
	eq(&d, "batch_index", got.GetBatchIndex(), want.GetBatchIndex())
	return d.String()
}

// eq reports whether got == want, and describes the field in d if not.
func eq[T comparable](d *strings.Builder, name string, got, want T) bool {
	if got != want {
		fmt.Fprintf(d, "  %s: got %q, want %q\n", name, fmt.Sprint(got), fmt.Sprint(want))
		return false
	}
	return true
}

// pixel is a typical tracking-pixel record, as the gateway builds it.
func pixel() *record.Beacon {
	return &record.Beacon{
		ReceivedAtMicros: 1_767_225_600_123_456,
		GatewayID:        []byte("gw-eu-west-1a-7"),
		RequestID:        []byte("01JGZ8Q4V6M3W9T2K5N7P0R8S1"),
		Kind:             record.KindPixel,
		Method:           []byte("GET"),
		Host:             []byte("t.example.com"),
		Path:             []byte("/i"),
		ClientIP:         []byte{203, 0, 113, 7},
		UserAgent:        []byte("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
		Referer:          []byte("https://example.com/some/long/page?x=1&utm_source=newsletter&utm_medium=email&utm_campaign=2026-winter-sale&utm_content=hero-banner"),
		Origin:           nil,
		ContentType:      nil,
		Params: []record.Param{
			{Name: []byte("sid"), Value: []byte("site-42")},
			{Name: []byte("uid"), Value: []byte("u-8f14e45fceea167a5a36dedd4bea2543")},
			{Name: []byte("sess"), Value: []byte("s-c9f0f895fb98ab9159f51fd0297e236d")},
			{Name: []byte("ev"), Value: []byte("page_view")},
			{Name: []byte("url"), Value: []byte("https://example.com/some/long/page?x=1")},
			{Name: []byte("ref"), Value: []byte("https://www.google.com/search?q=beacon+gateway+kafka+protobuf&sca_esv=5f3c1a2b&source=hp&ei=Zx1abc_DEFghIJklMNopQR&oq=beacon+gateway&gs_lp=Egxnd3Mtd2l6LXNlcnA")},
			{Name: []byte("sw"), Value: []byte("1920")},
			{Name: []byte("sh"), Value: []byte("1080")},
			{Name: []byte("ts"), Value: []byte("1767225600123")},
			{Name: []byte("lang"), Value: []byte("en-US")},
		},
		ShardKey: []byte("site-42:u-8f14e45fceea167a5a36dedd4bea2543"),
	}
}

// invalidUTF8 holds inputs that strings.ToValidUTF8 changes, each with a
// different shape of invalid sequence.
var invalidUTF8 = []string{
	"\xff",
	"a\xffb",
	"\xff\xfe\xfd",               // one run: one U+FFFD
	"\xed\xa0\x80",               // an encoded surrogate
	"\xc0\xaf",                   // overlong '/'
	"\xe2\x82",                   // truncated '€'
	"x\xe2\x82",                  // truncated at the end
	"\xf4\x90\x80\x80",           // above U+10FFFF
	"\xff\uFFFD\xff",             // a real U+FFFD between two runs
	"h\xc3llo w\xf6rld \x80\x81", // Latin-1 mixed in
	strings.Repeat("a\xff", 50),  // 100 bytes in, 200 out: the prefix grows past 127
}

func TestAppend(t *testing.T) {
	big := func(n int) []byte { return bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n] }
	type tc struct {
		name string
		b    *record.Beacon
	}
	tests := []tc{
		{"empty", &record.Beacon{}},
		{"pixel", pixel()},
		{"received_at_us", &record.Beacon{ReceivedAtMicros: 1_767_225_600_000_000}},
		{"received_at_us negative", &record.Beacon{ReceivedAtMicros: -1}},
		{"received_at_us min", &record.Beacon{ReceivedAtMicros: math.MinInt64}},
		{"received_at_us max", &record.Beacon{ReceivedAtMicros: math.MaxInt64}},
		{"received_at_us zero", &record.Beacon{ReceivedAtMicros: 0, Method: []byte("GET")}},
		{"gateway_id", &record.Beacon{GatewayID: []byte("gw-1")}},
		{"request_id", &record.Beacon{RequestID: []byte("req-1")}},
		{"kind pixel", &record.Beacon{Kind: record.KindPixel}},
		{"kind beacon", &record.Beacon{Kind: record.KindBeacon}},
		{"kind batch event", &record.Beacon{Kind: record.KindBatchEvent}},
		{"kind unknown", &record.Beacon{Kind: 200}}, // open enum: kept as a number
		{"method", &record.Beacon{Method: []byte("POST")}},
		{"host", &record.Beacon{Host: []byte("t.example.com:8443")}},
		{"path", &record.Beacon{Path: []byte("/batch")}},
		{"client_ip v4", &record.Beacon{ClientIP: []byte{192, 0, 2, 1}}},
		{"client_ip v4 zero bytes", &record.Beacon{ClientIP: []byte{0, 0, 0, 0}}},
		{"client_ip v6", &record.Beacon{ClientIP: []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}}},
		{"user_agent", &record.Beacon{UserAgent: []byte("curl/8.5.0")}},
		{"referer", &record.Beacon{Referer: []byte("https://example.com/")}},
		{"origin", &record.Beacon{Origin: []byte("https://example.com")}},
		{"content_type", &record.Beacon{ContentType: []byte("text/plain;charset=UTF-8")}},
		{"one param", &record.Beacon{Params: []record.Param{{Name: []byte("ev"), Value: []byte("click")}}}},
		{"empty param", &record.Beacon{Params: []record.Param{{}}}},
		{"param without value", &record.Beacon{Params: []record.Param{{Name: []byte("debug")}}}},
		{"param without name", &record.Beacon{Params: []record.Param{{Value: []byte("orphan")}}}},
		{"param long value", &record.Beacon{Params: []record.Param{{Name: []byte("d"), Value: big(300)}}}},
		{"payload", &record.Beacon{Payload: []byte(`{"ev":"click","x":1}`)}},
		{"payload 127", &record.Beacon{Payload: big(127)}},
		{"payload 128", &record.Beacon{Payload: big(128)}},
		{"payload 200", &record.Beacon{Payload: big(200)}},
		{"payload 16KiB", &record.Beacon{Payload: big(16 << 10)}},
		{"payload 20KiB", &record.Beacon{Payload: big(20 << 10)}},
		{"payload 3MiB", &record.Beacon{Payload: big(3 << 20)}},
		{"payload invalid utf8 kept", &record.Beacon{Payload: []byte("\xff\xfe{}\x00")}},
		{"shard_key", &record.Beacon{ShardKey: []byte("site-1:u1")}},
		{"batch_index 0", &record.Beacon{Kind: record.KindBatchEvent, BatchIndex: 0}},
		{"batch_index 1", &record.Beacon{Kind: record.KindBatchEvent, BatchIndex: 1}},
		{"batch_index 128", &record.Beacon{BatchIndex: 128}},
		{"network_user_id", &record.Beacon{Kind: record.KindClick, NetworkUserID: []byte("3f2a9c0e8b7d4a1f9e6c5b4a3d2e1f00")}},
		{"batch_index max", &record.Beacon{BatchIndex: math.MaxUint32}},
		{"segment track", &record.Beacon{Kind: record.KindBatchEvent, Protocol: record.ProtocolSegment, EventType: []byte("track"),
			EventID: []byte("ajs-next-1b2c3d"), Site: []byte("shop-1"), Payload: []byte(`{"event":"Buy"}`)}},
		{"snowplow page view", &record.Beacon{Kind: record.KindPixel, Protocol: record.ProtocolSnowplow, EventType: []byte("pv"),
			EventID: []byte("4d7f0e5c-5b8e-4b55-9d7c-0d2b1c4a9e11")}},
		{"overflow", &record.Beacon{ShardKey: []byte("hot"), Overflow: true}},
		{"user_agent 16KiB", &record.Beacon{UserAgent: big(17 << 10)}},
		{"multibyte utf8", &record.Beacon{Path: []byte("/héllo/日本/😀"), Params: []record.Param{{Name: []byte("q"), Value: []byte("naïve café ✓")}}}},
		{"real U+FFFD kept", &record.Beacon{Host: []byte("a\uFFFDb")}},
	}

	// Many parameters, some empty, so the repeated field is long.
	many := &record.Beacon{Kind: record.KindPixel}
	for i := range 1000 {
		p := record.Param{Name: fmt.Appendf(nil, "p%d", i), Value: fmt.Appendf(nil, "v%d", i*i)}
		switch i % 7 {
		case 0:
			p = record.Param{}
		case 3:
			p.Value = nil
		case 5:
			p.Name = nil
		}
		many.Params = append(many.Params, p)
	}
	tests = append(tests, tc{"1000 params", many})

	// Every string field with every shape of invalid UTF-8.
	for i, s := range invalidUTF8 {
		v := []byte(s)
		tests = append(tests, tc{fmt.Sprintf("invalid utf8 %d %q", i, s), &record.Beacon{
			GatewayID: v, RequestID: v, Method: v, Host: v, Path: v,
			UserAgent: v, Referer: v, Origin: v, ContentType: v,
			Params:   []record.Param{{Name: v, Value: v}, {Name: v}, {Value: v}, {Name: []byte("ok"), Value: v}},
			ShardKey: v, EventType: v, EventID: v, Site: v,
		}})
	}

	// The full pixel with one invalid field at a time.
	for _, f := range []string{"gateway_id", "request_id", "method", "host", "path", "user_agent", "referer", "origin", "content_type", "param name", "param value", "shard_key"} {
		b := pixel()
		v := []byte("bad\xc3(\xff")
		switch f {
		case "gateway_id":
			b.GatewayID = v
		case "request_id":
			b.RequestID = v
		case "method":
			b.Method = v
		case "host":
			b.Host = v
		case "path":
			b.Path = v
		case "user_agent":
			b.UserAgent = v
		case "referer":
			b.Referer = v
		case "origin":
			b.Origin = v
		case "content_type":
			b.ContentType = v
		case "param name":
			b.Params[4].Name = v
		case "param value":
			b.Params[4].Value = v
		case "shard_key":
			b.ShardKey = v
		}
		tests = append(tests, tc{"pixel with invalid " + f, b})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkAppend(t, tt.b) })
	}
}

// TestAppendEmpty checks that an empty Beacon encodes to nothing, as
// proto.Marshal of an empty message does.
func TestAppendEmpty(t *testing.T) {
	if got := record.Append(nil, &record.Beacon{}); len(got) != 0 {
		t.Errorf("Append(empty) = %x, want no bytes", got)
	}
}

// TestAppendKeepsPrefix checks that Append only appends: a record can go
// after others in one buffer.
func TestAppendKeepsPrefix(t *testing.T) {
	b := pixel()
	alone := record.Append(nil, b)
	prefix := []byte("previous record bytes")
	for _, extra := range []int{0, 1, len(alone)} {
		dst := make([]byte, len(prefix), len(prefix)+extra)
		copy(dst, prefix)
		got := record.Append(dst, b)
		if !bytes.Equal(got[:len(prefix)], prefix) {
			t.Errorf("extra cap %d: prefix changed to %q", extra, got[:len(prefix)])
		}
		if !bytes.Equal(got[len(prefix):], alone) {
			t.Errorf("extra cap %d: appended bytes differ from Append(nil)", extra)
		}
	}
}

// TestInvalidStringBreaksUnmarshal shows why Append sanitizes: a string
// field holding invalid UTF-8 makes proto.Unmarshal fail for consumers.
func TestInvalidStringBreaksUnmarshal(t *testing.T) {
	raw := protowire.AppendTag(nil, 9, protowire.BytesType) // user_agent
	raw = protowire.AppendBytes(raw, []byte("a\xffb"))
	if err := proto.Unmarshal(raw, new(beaconv1.Beacon)); err == nil {
		t.Fatal("proto.Unmarshal accepted invalid UTF-8 in a string field; the sanitizing in Append may be unneeded")
	}
}

// TestParamsValidUTF8 checks that trusting validated params changes
// nothing in the output, only the work.
func TestParamsValidUTF8(t *testing.T) {
	b := record.Beacon{Kind: record.KindPixel, Params: []record.Param{{Name: []byte("uid"), Value: []byte("ü-1")}, {Name: []byte("t"), Value: []byte("€")}}}
	checked := record.Append(nil, &b)
	b.ParamsValidUTF8 = true
	if trusted := record.Append(nil, &b); !bytes.Equal(checked, trusted) {
		t.Fatalf("ParamsValidUTF8 changed the encoding:\n%x\n%x", checked, trusted)
	}
}
