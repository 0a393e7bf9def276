package spool

// On-disk format. Everything is little-endian; a spool directory holds:
//
//	00000000000000000007.seg   segment files, named %020d.seg by a monotonic id
//	00000000000000000008.seg   (the highest id is the active one, appended to)
//	cursor                     the committed read position (absent: start of the first segment)
//	cursor.tmp                 a cursor being written (removed at Open)
//	lock                       flock'd while a process has the spool open
//
// A segment file is a sequence of frames and nothing else (no file header):
//
//	frame = [u32 body length][u32 CRC32-C (Castagnoli) of body][body]
//	body  = [u64 append time, unix microseconds][uvarint key length][key][value]
//
// A body is at least 9 bytes (time and a one-byte key length) and at most
// maxBody (16 MiB); a length outside those bounds is corruption, so a damaged
// length can never make a reader allocate more than one frame's bound (nor
// more than the bytes the file actually has). An all-zero header (what a
// crash can leave in a file's tail) is therefore invalid too.
//
// The cursor file is 20 bytes, replaced atomically (write cursor.tmp, fsync,
// rename, fsync the directory):
//
//	cursor = [u64 segment id][u64 offset][u32 CRC32-C of the first 16 bytes]
//
// It names the first unconsumed byte: the start of a frame, or the end of a
// segment. Segments with an id below the cursor's are wholly consumed and
// deleted.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

const (
	headerSize = 8 // u32 length + u32 CRC
	timeSize   = 8
	minBody    = timeSize + 1 // time and a one-byte uvarint key length
	// maxBody bounds one frame's body; checked on write (ErrTooLarge) and
	// on read (corruption), so a bad length cannot allocate gigabytes.
	maxBody = 16 << 20

	cursorName    = "cursor"
	cursorTmpName = "cursor.tmp"
	cursorSize    = 20
	lockName      = "lock"
	segSuffix     = ".seg"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameSize is the size on disk of a record with the given key and value
// lengths, or -1 if its body would be over maxBody.
func frameSize(keyLen, valueLen int) int64 {
	body := int64(timeSize) + int64(uvarintLen(uint64(keyLen))) + int64(keyLen) + int64(valueLen)
	if body > maxBody {
		return -1
	}
	return headerSize + body
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// appendFrame appends the frame of one record to dst. The caller has
// checked the size with frameSize.
func appendFrame(dst []byte, key, value []byte, appended time.Time) []byte {
	start := len(dst)
	body := timeSize + uvarintLen(uint64(len(key))) + len(key) + len(value)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(body))
	dst = binary.LittleEndian.AppendUint32(dst, 0) // CRC, filled in below
	dst = binary.LittleEndian.AppendUint64(dst, uint64(appended.UnixMicro()))
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	dst = append(dst, value...)
	b := dst[start+headerSize:]
	if len(b) != body {
		panic(fmt.Sprintf("BUG: spool: frame body is %d bytes, computed %d", len(b), body))
	}
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(b, castagnoli))
	return dst
}

// errFrame is the cause of every frame that cannot be decoded: a torn
// tail at Open, corruption at Read.
var errFrame = errors.New("invalid frame")

// parseHeader returns the body length and CRC of a frame header, or an
// error when the length is outside [minBody, maxBody].
func parseHeader(h []byte) (bodyLen int64, sum uint32, err error) {
	n := binary.LittleEndian.Uint32(h)
	if n < minBody || n > maxBody {
		return 0, 0, fmt.Errorf("%w: body length %d outside [%d, %d]", errFrame, n, minBody, maxBody)
	}
	return int64(n), binary.LittleEndian.Uint32(h[4:]), nil
}

// decodeBody checks a frame body against its CRC and splits it.
func decodeBody(body []byte, sum uint32) (key, value []byte, appended time.Time, err error) {
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return nil, nil, time.Time{}, fmt.Errorf("%w: CRC32-C %08x, header says %08x", errFrame, got, sum)
	}
	if len(body) < minBody {
		// parseHeader prevents this; a direct caller might not.
		return nil, nil, time.Time{}, fmt.Errorf("%w: body of %d bytes", errFrame, len(body))
	}
	us := int64(binary.LittleEndian.Uint64(body))
	rest := body[timeSize:]
	kl, n := binary.Uvarint(rest)
	if n <= 0 || kl > uint64(len(rest)-n) {
		return nil, nil, time.Time{}, fmt.Errorf("%w: key length does not fit a %d-byte body", errFrame, len(body))
	}
	rest = rest[n:]
	// Full slice expressions: fn must not be able to append into the value.
	return rest[:kl:kl], rest[kl:len(rest):len(rest)], time.UnixMicro(us), nil
}

// encodeCursor and decodeCursor convert the committed position to and
// from the cursor file's 20 bytes.
func encodeCursor(p Pos) []byte {
	b := make([]byte, 0, cursorSize)
	b = binary.LittleEndian.AppendUint64(b, p.Segment)
	b = binary.LittleEndian.AppendUint64(b, uint64(p.Offset))
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeCursor(b []byte) (Pos, error) {
	if len(b) != cursorSize {
		return Pos{}, fmt.Errorf("cursor is %d bytes, want %d", len(b), cursorSize)
	}
	if got, want := crc32.Checksum(b[:16], castagnoli), binary.LittleEndian.Uint32(b[16:]); got != want {
		return Pos{}, fmt.Errorf("cursor CRC32-C %08x, stored %08x", got, want)
	}
	p := Pos{Segment: binary.LittleEndian.Uint64(b), Offset: int64(binary.LittleEndian.Uint64(b[8:]))}
	if p.Offset < 0 {
		return Pos{}, fmt.Errorf("cursor offset %d is negative", p.Offset)
	}
	return p, nil
}

// FrameSize is the size on disk of a record with the given key and value
// lengths (what it counts against Config.MaxBytes), or -1 if it is over
// the frame limit.
func FrameSize(keyLen, valueLen int) int64 { return frameSize(keyLen, valueLen) }
