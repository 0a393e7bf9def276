package event

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// sampleEvent is a realistic ~2 KB analytics event; n varies its ids.
func sampleEvent(n int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"ev":"add_to_cart","uid":"u_8f3e2d1c0b9a8f7e6d5c%04d","sid":"S-4b1f0c9e2a7d","sess":"1731912345-77",`, n)
	b.WriteString(`"ts":1731912345678,"seq":42,"url":"https:\/\/example.com\/shop\/category\/shoes?color=red&size=42&utm_source=newsletter",`)
	b.WriteString(`"ref":"https://www.search.example/search?q=red+shoes","title":"Red Shoes \u2013 Autumn Sale | \"Example\" Shop",`)
	b.WriteString(`"screen":{"w":2560,"h":1440,"dpr":2,"depth":24},"viewport":{"w":1280,"h":720},"lang":"en-GB","tz":-60,`)
	b.WriteString(`"consent":{"analytics":true,"ads":false,"version":"2026-01"},"ab":["checkout_v2","reco_b","price_test_c"],`)
	b.WriteString(`"cart":{"currency":"EUR","value":129.95,"items":[`)
	for i := 0; i < 6; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"SKU-%06d","name":"Running shoe model %d – red/white","qty":%d,"price":%d.95,"tags":["sale","shoes","red"],"stock":null}`, 100000+i*7919, i, 1+i%3, 20+i*10)
	}
	b.WriteString(`]},"ua_hints":{"mobile":false,"platform":"Linux","brands":[{"brand":"Chromium","version":"131"},{"brand":"Not_A Brand","version":"24"}]},`)
	for i := 0; b.Len() < 1980; i++ {
		fmt.Fprintf(&b, `"pad_%02d":"%s",`, i, strings.Repeat("x", 40))
	}
	b.WriteString(`"end":true}`)
	return []byte(b.String())
}

// sampleBatch returns n events as a pretty JSON array and as NDJSON.
func sampleBatch(n int) (arr, nd []byte) {
	arr = append(arr, "[\n"...)
	for i := 0; i < n; i++ {
		ev := sampleEvent(i)
		if i > 0 {
			arr = append(arr, ",\n"...)
		}
		arr = append(arr, "  "...)
		arr = append(arr, ev...)
		nd = append(nd, ev...)
		nd = append(nd, "\r\n"...)
	}
	arr = append(arr, "\n]\n"...)
	return arr, nd
}

func BenchmarkValidateObject(b *testing.B) {
	ev := sampleEvent(0)
	b.ReportAllocs()
	b.SetBytes(int64(len(ev)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, err := ValidateObject(ev, Limits{}); err != nil || len(v) != len(ev) {
				b.Fatal(err)
			}
		}
	})
}

func benchSplit(b *testing.B, body []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var n, bytesSeen int
		fn := func(i int, ev []byte, err error) bool {
			if err != nil || ev[0] != '{' {
				b.Fatal(i, err)
			}
			n++
			bytesSeen += len(ev)
			return true
		}
		for pb.Next() {
			n = 0
			if err := Split(body, Limits{}, fn); err != nil || n != 50 {
				b.Fatal(err, n)
			}
		}
		_ = bytesSeen
	})
}

func BenchmarkSplitArray50(b *testing.B) {
	arr, _ := sampleBatch(50)
	benchSplit(b, arr)
}

func BenchmarkSplitNDJSON50(b *testing.B) {
	_, nd := sampleBatch(50)
	benchSplit(b, nd)
}

// BenchmarkSplitKeys is a batch's split plus its shard-key lookups
// (two members, the second absent, as with the default sources
// json:user_id,json:anonymous_id when events carry only one): Split then
// Field on each event, against SplitFields noting them while it
// validates.
func BenchmarkSplitKeys(b *testing.B) {
	arr, _ := sampleBatch(20)
	names := []string{"uid", "anonymous_id"}
	b.Run("Split+Field", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(arr)))
		b.RunParallel(func(pb *testing.PB) {
			scratch := make([]byte, 0, 256)
			n := 0
			fn := func(_ int, ev []byte, err error) bool {
				for _, name := range names {
					if _, _, ok := Field(ev, name, scratch[:0]); ok {
						n++
					}
				}
				return err == nil
			}
			for pb.Next() {
				if n = 0; Split(arr, Limits{}, fn) != nil || n != 20 {
					b.Fatal("split", n)
				}
			}
		})
	})
	b.Run("SplitFields", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(arr)))
		b.RunParallel(func(pb *testing.PB) {
			scratch := make([]byte, 0, 256)
			f := Fields{Names: names}
			n := 0
			fn := func(_ int, ev []byte, err error) bool {
				for k := range names {
					if _, _, ok := Value(f.Vals[k], scratch[:0]); ok {
						n++
					}
				}
				return err == nil
			}
			for pb.Next() {
				if n = 0; SplitFields(arr, Limits{}, &f, fn) != nil || n != 20 {
					b.Fatal("split", n)
				}
			}
		})
	})
}

func BenchmarkField(b *testing.B) {
	ev := sampleEvent(0)
	for _, name := range []string{"uid", "title", "ts"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(ev)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				scratch := make([]byte, 0, 256)
				for pb.Next() {
					v, _, ok := Field(ev, name, scratch[:0])
					if !ok || len(v) == 0 {
						b.Fatal("missing", name)
					}
				}
			})
		})
	}
}

func BenchmarkValidateReject(b *testing.B) {
	ev := bytes.Replace(sampleEvent(0), []byte(`"end":true`), []byte(`"end":tru`), 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(ev)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := ValidateObject(ev, Limits{}); err == nil {
				b.Fatal("accepted")
			}
		}
	})
}
