package event

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"slices"
)

// Split calls fn for each event of a batch body, in order, with its
// zero-based index and its bytes (a sub-slice of body, without
// surrounding whitespace). fn returning false stops the split.
//
// The body's first non-whitespace byte picks its form: '[' is a JSON
// array of events (whitespace allowed anywhere); '{' is NDJSON, one event
// per line, where blank lines and "\r\n" line ends are tolerated, a
// single {...} body is one event, and an event may not span lines.
//
// Each event must be a JSON object within lim. Problems with one event
// are passed to fn with that event's index and bytes, and Split goes on:
// ErrNotObject for another valid value, ErrEventTooLarge, and invalid_utf8
// or too_deep *Errors. A syntax error (invalid_json) in an NDJSON line is
// reported for that line and the split resumes at the next line. In an
// array a syntax error means the rest cannot be delimited, so it is
// reported once, with a nil ev, and the split stops; its index is that of
// the element being read (the next one, if the error is in the separator
// after an element, as in "[{} {}]"). An element nested deeper than
// MaxDepthCap stops the split the same way. Split returns nil after
// per-event errors: the batch as a whole was readable.
//
// Split returns an error, without calling fn at all, when the body is
// empty or whitespace (ErrEmpty), starts with anything but '[' or '{'
// (ErrNotBatch; invalid_json for a byte order mark), or holds more than
// lim.MaxEvents events (ErrTooManyEvents), so a caller never half-accepts
// a batch over the limit. Data after the array's closing ']' is an
// invalid_json error as well; it too is found before fn is called, unless
// the body still ends in ']' (as in "[{}] ]"): then the events before it
// have already been passed to fn when Split returns the error.
//
// Those checks use a structural pre-pass over the array (strings and
// brackets only) that costs about two thirds of validating, so it only
// runs when cheap tests cannot rule the errors out: when the body has at
// least MaxEvents commas, or its last non-whitespace byte is not ']'.
// NDJSON needs only a line count, and only when the body has at least
// MaxEvents newlines.
//
// Offsets in errors are offsets in body.
func Split(body []byte, lim Limits, fn func(i int, ev []byte, err error) bool) error {
	return SplitFields(body, lim, nil, fn)
}

// Fields asks SplitFields to note some top-level members of each event
// while it validates the event, so that a caller that needs them (for a
// shard key) does not walk the event a second time, as Field would: with
// large events that walk cost as much as validating.
type Fields struct {
	// Names are the members to note, distinct, compared after unescaping
	// as Field compares them.
	Names []string
	// Vals[k] is the raw JSON text of the last top-level member named
	// Names[k] of the event fn was called with (Value reads it as Field
	// would), or nil if it has none or was rejected. It is valid during
	// the call; SplitFields sizes it.
	Vals [][]byte
	at   [][2]int // where each noted value starts and ends in the body; end 0: none
}

// index returns the index in Names of the raw key contents key, which has
// escapes if esc, or -1.
func (f *Fields) index(key []byte, esc bool) int {
	for k, name := range f.Names {
		if keyEquals(key, esc, name) {
			return k
		}
	}
	return -1
}

// size makes Vals and the offsets as long as Names.
func (f *Fields) size() {
	if f != nil {
		f.Vals = slices.Grow(f.Vals[:0], len(f.Names))[:len(f.Names)]
		f.at = slices.Grow(f.at[:0], len(f.Names))[:len(f.Names)]
	}
}

// reset clears the noted values before an event.
func (f *Fields) reset() {
	if f != nil {
		clear(f.at)
		clear(f.Vals)
	}
}

// fill sets Vals from the offsets the scanner noted in body.
func (f *Fields) fill(body []byte) {
	if f == nil {
		return
	}
	for k, at := range f.at {
		if at[1] > 0 {
			f.Vals[k] = body[at[0]:at[1]:at[1]]
		}
	}
}

// SplitFields is Split that also notes, in f (if not nil), the members
// f.Names of each event for fn to read in f.Vals.
func SplitFields(body []byte, lim Limits, f *Fields, fn func(i int, ev []byte, err error) bool) error {
	f.size()
	lim = lim.withDefaults()
	i := skipWS(body, 0)
	if i == len(body) {
		return ErrEmpty
	}
	switch body[i] {
	case '[':
		return splitArray(body, i, lim, f, fn)
	case '{':
		return splitLines(body, lim, f, fn)
	}
	if hasBOM(body[i:]) {
		return problem{codeBOM, i}.err(lim.MaxDepth)
	}
	return ErrNotBatch.At(i, "")
}

func tooMany(limit int) *Error {
	e := ErrTooManyEvents.At(-1, "")
	e.Limit = limit
	return e
}

// splitArray splits the JSON array whose '[' is at body[open].
func splitArray(body []byte, open int, lim Limits, f *Fields, fn func(int, []byte, error) bool) error {
	if _, last := trimWS(body); body[last-1] != ']' || bytes.Count(body, []byte{','}) >= lim.MaxEvents {
		n, end, ok := shape(body, open)
		if n > lim.MaxEvents {
			return tooMany(lim.MaxEvents)
		}
		if ok {
			if k := skipWS(body, end); k != len(body) {
				return problem{codeTrailing, k}.err(lim.MaxDepth)
			}
		}
	}

	s := scanner{b: body, maxDepth: lim.MaxDepth, keepGoing: true, fields: f}
	i := skipWS(body, open+1)
	if i < len(body) && body[i] == ']' {
		return trailing(body, i+1, lim)
	}
	for idx := 0; ; idx++ {
		start := skipWS(body, i)
		s.soft = problem{}
		f.reset()
		s.member = 0
		end, p := s.value(start)
		if p.code != codeNone {
			f.reset()
			fn(idx, nil, p.err(lim.MaxDepth))
			return nil
		}
		var err error
		switch {
		case body[start] != '{':
			err = ErrNotObject
		case s.soft.code != codeNone:
			err = s.soft.err(lim.MaxDepth)
		case end-start > lim.MaxEventBytes:
			err = tooLarge(start, end-start, lim.MaxEventBytes)
		case idx >= lim.MaxEvents:
			// Cannot happen: either the pre-pass counted every element the
			// validating pass can reach or there are fewer commas than
			// MaxEvents. It keeps the limit a hard one.
			return tooMany(lim.MaxEvents)
		}
		if err != nil {
			f.reset() // a rejected event has no members to read
		}
		f.fill(body)
		if !fn(idx, body[start:end], err) {
			return nil
		}
		i = skipWS(body, end)
		if i >= len(body) {
			f.reset()
			fn(idx+1, nil, problem{codeEOF, i}.err(lim.MaxDepth))
			return nil
		}
		switch body[i] {
		case ',':
			i++
		case ']':
			return trailing(body, i+1, lim)
		default:
			f.reset()
			fn(idx+1, nil, problem{codeExpectArrayNext, i}.err(lim.MaxDepth))
			return nil
		}
	}
}

// trailing checks that nothing but whitespace follows the array's ']'.
// The pre-pass has caught trailing data already unless the body ends in
// ']'.
func trailing(body []byte, i int, lim Limits) error {
	if k := skipWS(body, i); k != len(body) {
		return problem{codeTrailing, k}.err(lim.MaxDepth)
	}
	return nil
}

// shape walks the array whose '[' is at b[open], tracking only strings
// and bracket types, and returns how many elements it has and the index
// after its ']'. If the brackets do not match up (or nest deeper than the
// bit stack), ok is false and n counts the elements seen so far. It does
// not validate; the pass that calls fn does.
func shape(b []byte, open int) (n, end int, ok bool) {
	var stack bitstack
	depth := 0
	want := false // at depth 1, whether the next non-space byte starts an element
	for i := open; i < len(b); i++ {
		c := b[i]
		if depth == 1 && want && !isWS(c) && c != ',' && c != ']' {
			n++
			want = false
		}
		switch c {
		case '"':
			j, _ := stringEnd(b, i+1)
			if j < 0 {
				return n, 0, false
			}
			i = j
		case '[', '{':
			depth++
			if depth > len(stack)*64 {
				return n, 0, false
			}
			stack.set(depth, c == '{')
			if depth == 1 {
				want = true
			}
		case ']', '}':
			if depth == 0 || stack.obj(depth) != (c == '}') {
				return n, 0, false
			}
			if depth--; depth == 0 {
				return n, i + 1, true
			}
		case ',':
			if depth == 1 {
				want = true
			}
		}
	}
	return n, 0, false
}

// stringEnd returns the index of the quote that closes the string whose
// contents start at b[i] (or -1 if there is none), and whether the string
// has escapes. It skips escaped quotes but does not validate; eight bytes
// at a time, since short strings dominate JSON.
func stringEnd(b []byte, i int) (int, bool) {
	esc := false
	for {
		i = quoteOrBackslash(b, i)
		if i >= len(b) {
			return -1, esc
		}
		if b[i] == '"' {
			return i, esc
		}
		esc = true
		i += 2 // the backslash and the byte it escapes
	}
}

// quoteOrBackslash returns the index of the first '"' or '\\' at or after
// b[i], or len(b) (or more) if there is none.
func quoteOrBackslash(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		if m := hasZero(x^('"'*ones)) | hasZero(x^('\\'*ones)); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(b); i++ {
		if b[i] == '"' || b[i] == '\\' {
			break
		}
	}
	return i
}

// splitLines splits an NDJSON body.
func splitLines(body []byte, lim Limits, f *Fields, fn func(int, []byte, error) bool) error {
	if bytes.Count(body, []byte{'\n'}) >= lim.MaxEvents && countLines(body) > lim.MaxEvents {
		return tooMany(lim.MaxEvents)
	}
	s := scanner{maxDepth: lim.MaxDepth, fields: f}
	idx := 0
	for pos := 0; pos < len(body); {
		eol := bytes.IndexByte(body[pos:], '\n')
		next := pos + eol + 1
		if eol < 0 {
			eol, next = len(body)-pos, len(body)
		}
		line := body[:pos+eol]
		start, end := pos+skipWS(line[pos:], 0), len(line)
		for end > start && isWS(line[end-1]) {
			end--
		}
		pos = next
		if start == end {
			continue // blank line
		}
		var err error
		f.reset()
		if end-start > lim.MaxEventBytes {
			err = tooLarge(start, end-start, lim.MaxEventBytes)
		} else {
			s.b = body[:end]
			s.member = 0
			if p := s.event(start); p.code != codeNone {
				err = p.err(lim.MaxDepth)
			} else if body[start] != '{' {
				err = ErrNotObject
			}
		}
		if err != nil {
			f.reset() // a rejected event has no members to read
		}
		f.fill(body)
		if !fn(idx, body[start:end], err) {
			return nil
		}
		idx++
	}
	return nil
}

// countLines counts the lines of b that are not blank.
func countLines(b []byte) int {
	n := 0
	for pos := 0; pos < len(b); {
		eol := bytes.IndexByte(b[pos:], '\n')
		if eol < 0 {
			eol = len(b) - pos
		}
		if skipWS(b[:pos+eol], pos) < pos+eol {
			n++
		}
		pos += eol + 1
	}
	return n
}
