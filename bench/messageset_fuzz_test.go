package bench

import (
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzUpconvert: whatever bytes an old producer sends, upconvert either
// refuses them or returns a record batch that franz-go reads back with
// a valid CRC and one record per message.
func FuzzUpconvert(f *testing.F) {
	f.Add(messageSet(f, 1, [][2][]byte{{[]byte("uid-1"), []byte("uid=uid-1&seq=1")}, {nil, []byte("seq=2")}}))
	f.Add(messageSet(f, 0, [][2][]byte{{[]byte("k"), nil}}))
	f.Fuzz(func(t *testing.T, set []byte) {
		b, err := upconvert(set, 1_796_616_807_000)
		if err != nil {
			return
		}
		var batch kmsg.RecordBatch
		if err := batch.ReadFrom(b); err != nil {
			t.Fatalf("batch does not parse: %v", err)
		}
		if int(batch.Length) != len(b)-12 || batch.Magic != 2 || uint32(batch.CRC) != crc32.Checksum(b[21:], crc32c) {
			t.Fatalf("batch header: length %d of %d bytes, magic %d", batch.Length, len(b), batch.Magic)
		}
		n, rest := 0, batch.Records
		for len(rest) > 0 {
			var r kmsg.Record
			l, used := binary.Varint(rest)
			if used <= 0 || int(l) > len(rest)-used {
				t.Fatalf("record %d: bad length", n)
			}
			if err := r.ReadFrom(rest[:used+int(l)]); err != nil {
				t.Fatalf("record %d: %v", n, err)
			}
			if r.OffsetDelta != int32(n) {
				t.Fatalf("record %d: offset delta %d", n, r.OffsetDelta)
			}
			rest = rest[used+int(l):]
			n++
		}
		if n != int(batch.NumRecords) || n != int(batch.LastOffsetDelta)+1 {
			t.Fatalf("%d records, header says %d (last delta %d)", n, batch.NumRecords, batch.LastOffsetDelta)
		}
	})
}
