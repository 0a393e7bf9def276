package form

import (
	"bytes"
	"strings"
	"testing"

	"github.com/beacongate/beacongate/ingest/record"
)

// pixelQuery is a realistic ~0.8 KB tracking-pixel query string.
func pixelQuery() []byte {
	var b strings.Builder
	b.WriteString("sid=S-4b1f0c9e2a7d&uid=u_8f3e2d1c0b9a8f7e6d5c4b3a&sess=1731912345-77&ev=page_view")
	b.WriteString("&url=https%3A%2F%2Fexample.com%2Fshop%2Fcategory%2Fshoes%3Fcolor%3Dred%26size%3D42%26utm_source%3Dnewsletter%26utm_medium%3Demail%26utm_campaign%3Dautumn_sale_2026")
	b.WriteString("&ref=https%3A%2F%2Fwww.search.example%2Fsearch%3Fq%3Dred%2Bshoes%2Bsize%2B42%26hl%3Den")
	b.WriteString("&sw=2560&sh=1440&vw=1280&vh=720&dpr=2&ts=1731912345678&tz=-60&lang=en-GB&cs=UTF-8")
	b.WriteString("&title=Red+Shoes+%E2%80%93+Autumn+Sale+%7C+Example+Shop&ct=text%2Fhtml&cd=24&je=0&fl=0")
	for i := 0; b.Len() < 780; i++ {
		b.WriteString("&pad")
		b.WriteByte(byte('a' + i%26))
		b.WriteString("=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
	}
	return []byte(b.String())
}

func BenchmarkParsePixel(b *testing.B) {
	raw := pixelQuery()
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]record.Param, 0, 64)
		scratch := make([]byte, 0, 2*len(raw))
		for pb.Next() {
			ps, _, err := Parse(dst[:0], scratch[:0], raw, Limits{})
			if err != nil || len(ps) < 20 || !bytes.Equal(Get(ps, "ev"), []byte("page_view")) {
				b.Fatal("bad parse", err, len(ps))
			}
		}
	})
}

func BenchmarkParseReject(b *testing.B) {
	raw := append(pixelQuery(), "&bad=%zz"...)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]record.Param, 0, 64)
		scratch := make([]byte, 0, 2*len(raw))
		for pb.Next() {
			if _, _, err := Parse(dst[:0], scratch[:0], raw, Limits{}); err == nil {
				b.Fatal("accepted bad escape")
			}
		}
	})
}

func BenchmarkGet(b *testing.B) {
	ps, _, err := Parse(nil, nil, pixelQuery(), Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if Get(ps, "lang") == nil {
				b.Fatal("missing lang")
			}
		}
	})
}
