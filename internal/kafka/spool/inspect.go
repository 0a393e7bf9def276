package spool

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Info is what Inspect finds in a spool directory.
type Info struct {
	Stats
	// Cursor is the committed position (the start of the first segment
	// when there is no cursor file, or it is damaged).
	Cursor Pos
	// TornBytes are bytes at the end of the last segment that do not
	// make a whole frame: a crash during an append. Open cuts them off.
	TornBytes int64
	// CorruptBytes are unreadable bytes in sealed segments, which Read
	// skips; the records in them are lost.
	CorruptBytes int64
}

// Inspect reads the spool in dir without changing anything: no lock, no
// torn tail cut off, no cursor rewritten, no consumed segment deleted, no
// directory created. It may run beside the process that has the spool
// open (its figures are then a moment's snapshot). fn, if not nil, gets
// every unconsumed record in order (its slices are valid only during the
// call); an error from it stops the walk and is returned.
func Inspect(dir string, fn func(key, value []byte, appended time.Time) error) (Info, error) {
	var info Info
	if fi, err := os.Stat(dir); err != nil {
		return info, fmt.Errorf("spool: cannot inspect %s: %w", dir, err)
	} else if !fi.IsDir() {
		return info, fmt.Errorf("spool: cannot inspect %s: not a directory", dir)
	}
	ids, err := listSegments(dir)
	if err != nil {
		return info, err
	}
	c := Pos{}
	if b, err := os.ReadFile(filepath.Join(dir, cursorName)); err == nil {
		if p, err := decodeCursor(b); err == nil {
			c = p
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return info, fmt.Errorf("spool: cannot read the cursor in %s: %w", dir, err)
	}
	if len(ids) > 0 && ids[0] > c.Segment {
		c = Pos{Segment: ids[0]}
	}
	info.Cursor = c
	var buf []byte
	for i, id := range ids {
		if id < c.Segment {
			continue // consumed, left for Open to delete
		}
		info.Segments++
		start := int64(0)
		if id == c.Segment {
			start = c.Offset
		}
		path := filepath.Join(dir, segName(id))
		r, err := openSegReader(path, id, buf)
		if err != nil {
			return info, err
		}
		fi, err := r.f.Stat()
		if err != nil {
			r.close()
			return info, fmt.Errorf("spool: cannot stat segment %s: %w", path, err)
		}
		size := fi.Size()
		off := start
		for {
			key, value, t, next, err := r.frame(off, size)
			if errors.Is(err, io.EOF) {
				break
			}
			if errors.Is(err, errFrame) {
				if i == len(ids)-1 {
					info.TornBytes += size - off
				} else {
					info.CorruptBytes += size - off
				}
				break
			}
			if err != nil {
				r.close()
				return info, err
			}
			if info.Records == 0 {
				info.Oldest = t
			}
			info.Records++
			info.Bytes += next - off
			if fn != nil {
				if err := fn(key, value, t); err != nil {
					r.close()
					return info, err
				}
			}
			off = next
		}
		buf = r.buf
		r.close()
	}
	return info, nil
}
