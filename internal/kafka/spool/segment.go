package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// readBufSize is how much a segReader reads ahead: many frames per pread.
const readBufSize = 64 << 10

// segMeta is what the spool knows about one segment file. Only whole
// frames count: size never includes a half-written tail.
type segMeta struct {
	id        uint64
	size      int64     // bytes readable (the active one: whole frames appended)
	records   int64     // frames readable before corruptAt
	first     time.Time // append time of the frame at offset 0; zero if none or unknown
	corruptAt int64     // offset from which Read skipped the rest, -1 if none
}

func segName(id uint64) string { return fmt.Sprintf("%020d%s", id, segSuffix) }

func (s *Spool) segPath(id uint64) string { return filepath.Join(s.cfg.Dir, segName(id)) }

// listSegments returns the ids of the segment files in dir, ascending.
// Other files are left alone.
func listSegments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: cannot list segments in %s: %w", dir, err)
	}
	var ids []uint64
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || len(name) != 20+len(segSuffix) || !strings.HasSuffix(name, segSuffix) {
			continue
		}
		id, err := strconv.ParseUint(name[:20], 10, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// createSegment creates an empty segment file for appending. O_EXCL: ids
// are monotonic, so an existing file means a bug or a second writer.
func createSegment(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("spool: cannot create segment %s: %w", path, err)
	}
	return f, nil
}

// syncDir makes created, renamed and deleted directory entries durable.
// Its error is wrapped by the caller, which says what it was doing.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot open directory %s to fsync it: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot fsync directory %s: %w", dir, err)
	}
	return nil
}

// segReader decodes the frames of one segment file through a read-ahead
// buffer. The slices it returns are valid until its next call.
type segReader struct {
	f      *os.File
	id     uint64
	buf    []byte // buf[:n] holds the file's bytes from bufOff
	bufOff int64
	n      int
}

// openSegReader opens segment id for reading, reusing buf (the previous
// segment's buffer, or nil).
func openSegReader(path string, id uint64, buf []byte) (*segReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("spool: cannot open segment %s for reading: %w", path, err)
	}
	return &segReader{f: f, id: id, buf: buf}, nil
}

func (r *segReader) close() {
	if r != nil {
		r.f.Close()
	}
}

// frame decodes the frame at off, reading no byte at or past limit (the
// end of the segment's whole frames). It returns io.EOF when off is
// limit, an error wrapping errFrame for a frame that is torn or corrupt,
// or an I/O error.
func (r *segReader) frame(off, limit int64) (key, value []byte, appended time.Time, next int64, err error) {
	if off >= limit {
		return nil, nil, time.Time{}, off, io.EOF
	}
	h, err := r.bytes(off, headerSize, limit)
	if err != nil {
		return nil, nil, time.Time{}, off, err
	}
	n, sum, err := parseHeader(h)
	if err != nil {
		return nil, nil, time.Time{}, off, err
	}
	// Checked before reading the body: the allocation below is bounded
	// by the bytes the segment actually has, not by the length field.
	body, err := r.bytes(off+headerSize, n, limit)
	if err != nil {
		return nil, nil, time.Time{}, off, err
	}
	key, value, appended, err = decodeBody(body, sum)
	if err != nil {
		return nil, nil, time.Time{}, off, err
	}
	return key, value, appended, off + headerSize + n, nil
}

// bytes returns the n bytes at off, refilling the buffer from the file
// when they are not in it. n bytes not fitting before limit is a torn or
// corrupt frame, not an I/O error.
func (r *segReader) bytes(off, n, limit int64) ([]byte, error) {
	if off+n > limit {
		return nil, fmt.Errorf("%w: %d bytes at offset %d run past the end of the segment at %d", errFrame, n, off, limit)
	}
	if off >= r.bufOff && off+n <= r.bufOff+int64(r.n) {
		i := off - r.bufOff
		return r.buf[i : i+n : i+n], nil
	}
	want := min(max(n, readBufSize), limit-off) // >= n, see the check above
	if int64(cap(r.buf)) < want || (cap(r.buf) > 4*readBufSize && want <= readBufSize) {
		// Grow for a large frame; shrink back after one.
		r.buf = make([]byte, max(want, readBufSize))
	}
	m, err := r.f.ReadAt(r.buf[:want], off)
	r.bufOff, r.n = off, m
	if int64(m) < n {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: segment file ends at %d, before the %d bytes at offset %d", errFrame, off+int64(m), n, off)
		}
		return nil, fmt.Errorf("spool: cannot read %d bytes at offset %d of %s: %w", n, off, r.f.Name(), err)
	}
	return r.buf[:n:n], nil
}
