package spool

import (
	"os"
	"runtime"
	"testing"
	"time"
)

// FuzzOpenSegment feeds arbitrary bytes to Open and Read as a segment
// file: the last one (a torn tail to cut) or, with sealed, one followed by
// a good segment (corruption for Read to skip). Neither may panic, loop,
// or allocate for a length field more than the file has; every whole
// frame before the damage is read, the good segment after it always is,
// and appends go on afterwards.
func FuzzOpenSegment(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, sealed bool) {
		dir := t.TempDir()
		must(t, os.WriteFile(segFile(dir, 7), data, 0o640))
		if sealed {
			var after []byte
			after = appendFrame(after, []byte("k"), []byte("after"), time.UnixMicro(1))
			must(t, os.WriteFile(segFile(dir, 8), after, 0o640))
		}

		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		allocBefore := ms.TotalAlloc

		s, _ := open(t, dir, Config{MaxBytes: 1 << 20, SegmentBytes: 1 << 16})
		defer crash(s) // no fsyncs: keeps the fuzzer fast
		opened := s.Stats()
		var got []rec
		for reads := 0; ; reads++ {
			if reads > len(data)+10 {
				t.Fatalf("%d Reads of a %d-byte segment", reads, len(data))
			}
			_, n, err := s.Read(100, func(k, v []byte, at time.Time) error {
				got = append(got, rec{string(k), string(v), at})
				return nil
			})
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if s.r != nil && cap(s.r.buf) > max(readBufSize, len(data)) {
				t.Fatalf("read buffer of %d bytes for a %d-byte segment", cap(s.r.buf), len(data))
			}
			if n == 0 {
				break
			}
		}

		runtime.ReadMemStats(&ms)
		if a := ms.TotalAlloc - allocBefore; a > 4<<20+4*uint64(len(data)) {
			t.Fatalf("Open and Read of a %d-byte segment allocated %d bytes", len(data), a)
		}
		if int64(len(got)) != opened.Records {
			t.Fatalf("Open counted %d records, Read returned %d", opened.Records, len(got))
		}
		if sealed && (len(got) == 0 || got[len(got)-1].value != "after") {
			t.Fatalf("the good segment after the fuzzed one was not read: %d records", len(got))
		}
		if st := s.Stats(); st.Records != opened.Records || st.Bytes > int64(len(data))+100 {
			t.Fatalf("Stats after reading: %+v, at Open %+v", st, opened)
		}

		must(t, s.Append([]byte("new"), []byte("record")))
		_, n, err := s.Read(10, func(k, v []byte, _ time.Time) error {
			if string(k) != "new" || string(v) != "record" {
				t.Fatalf("appended new/record, read %q/%q", k, v)
			}
			return nil
		})
		if n != 1 || err != nil {
			t.Fatalf("Read after Append: %d records, %v", n, err)
		}
	})
}
