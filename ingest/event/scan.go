package event

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"

	"github.com/beacongate/beacongate/ingest/internal/lex"
)

// stackWords sizes the bit stack of open containers. It holds a little
// more than MaxDepthCap so that Split's pre-pass, which also counts the
// batch array, has room.
const stackWords = MaxDepthCap/64 + 1

// bitstack records, per nesting level, whether the open container is an
// object (1) or an array (0). It lives on the caller's stack.
type bitstack [stackWords]uint64

// set records the container at depth d (1-based).
func (s *bitstack) set(d int, obj bool) {
	w, bit := (d-1)>>6, uint64(1)<<((d-1)&63)
	if obj {
		s[w] |= bit
	} else {
		s[w] &^= bit
	}
}

// obj reports whether the container at depth d (1-based) is an object.
func (s *bitstack) obj(d int) bool { return s[(d-1)>>6]&(1<<((d-1)&63)) != 0 }

// scanner is a strict RFC 8259 validator. It walks one value iteratively
// (no recursion, so hostile nesting cannot grow the goroutine stack) and
// never allocates.
type scanner struct {
	b        []byte
	maxDepth int
	// keepGoing makes UTF-8 and depth problems "soft": the first one is
	// recorded in soft and the scan goes on to find where the value ends,
	// so Split can report it for one array element and carry on. Syntax
	// errors always stop the scan.
	keepGoing bool
	soft      problem
	stack     bitstack
	// fields, if not nil, asks for the raw values of some top-level
	// members of the value scanned (Split's Fields). member is 1 + the
	// index in fields.Names of the member whose value is being scanned at
	// depth 1 (0: none), vstart the index after that member's colon.
	fields *Fields
	member int
	vstart int
	esc    bool // the last string scanned had an escape
}

// noteSoft records a soft problem and reports whether the scan must stop.
func (s *scanner) noteSoft(c code, off int) bool {
	if !s.keepGoing {
		return true
	}
	if s.soft.code == codeNone {
		s.soft = problem{c, off}
	}
	return false
}

// value scans the JSON value starting at or after s.b[i] (leading
// whitespace is skipped) and returns the index just past it. Depth counts
// the containers enclosing a byte, including the value itself: "{}" has
// depth 1, {"a":[]} depth 2.
func (s *scanner) value(i int) (int, problem) {
	b := s.b
	depth := 0
	var p problem
	for {
		// A value is expected at i.
		i = skipWS(b, i)
		if i >= len(b) {
			return i, problem{codeEOF, i}
		}
		switch c := b[i]; c {
		case '{', '[':
			depth++
			if depth > s.maxDepth {
				if depth > MaxDepthCap || s.noteSoft(codeTooDeep, i) {
					return i, problem{codeTooDeep, i}
				}
			}
			s.stack.set(depth, c == '{')
			i = skipWS(b, i+1)
			if i >= len(b) {
				return i, problem{codeEOF, i}
			}
			if c == '[' {
				if b[i] != ']' {
					continue // first element
				}
			} else {
				if b[i] != '}' {
					k := i
					if i, p = s.key(i); p.code != codeNone {
						return i, p
					}
					if depth == 1 && s.fields != nil {
						s.noteKey(k, i)
					}
					continue // first member's value
				}
			}
			i++ // empty container
			depth--
		case '"':
			if i, p = s.str(i); p.code != codeNone {
				return i, p
			}
		case 't':
			if i, p = literal(b, i, "true"); p.code != codeNone {
				return i, p
			}
		case 'f':
			if i, p = literal(b, i, "false"); p.code != codeNone {
				return i, p
			}
		case 'n':
			if i, p = literal(b, i, "null"); p.code != codeNone {
				return i, p
			}
		default:
			if c != '-' && (c < '0' || c > '9') {
				return i, problem{codeExpectValue, i}
			}
			if i, p = number(b, i); p.code != codeNone {
				return i, p
			}
		}
		// A value ended at i: close containers until one wants more.
		for {
			if depth == 0 {
				return i, problem{}
			}
			if depth == 1 && s.member > 0 {
				// A noted member's value ended (this iteration runs once
				// per value at depth 1, and after a nested value's close).
				// Offsets, not a slice of b: a slice stored in *Fields
				// would make every caller's b escape to the heap.
				s.fields.at[s.member-1] = [2]int{skipWS(b, s.vstart), i}
				s.member = 0
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return i, problem{codeEOF, i}
			}
			obj := s.stack.obj(depth)
			c := b[i]
			if c == ',' {
				i++
				if obj {
					k := skipWS(b, i)
					if i, p = s.key(k); p.code != codeNone {
						return i, p
					}
					if depth == 1 && s.fields != nil {
						s.noteKey(k, i)
					}
				}
				break
			}
			if obj && c == '}' || !obj && c == ']' {
				i++
				depth--
				continue
			}
			if obj {
				return i, problem{codeExpectObjectNext, i}
			}
			return i, problem{codeExpectArrayNext, i}
		}
	}
}

// noteKey starts noting the value of the member whose key's opening quote
// is at s.b[k], if fields asks for it; colon is the index after the
// member's colon.
func (s *scanner) noteKey(k, colon int) {
	end := colon - 1 // the colon; the key's closing quote is before it
	for s.b[end] != '"' {
		end--
	}
	s.member = s.fields.index(s.b[k+1:end], s.esc) + 1
	s.vstart = colon
}

// key scans `"name" :` at b[i] and returns the index after the colon.
func (s *scanner) key(i int) (int, problem) {
	b := s.b
	if i >= len(b) {
		return i, problem{codeEOF, i}
	}
	if b[i] != '"' {
		return i, problem{codeExpectKey, i}
	}
	s.esc = false
	i, p := s.str(i)
	if p.code != codeNone {
		return i, p
	}
	i = skipWS(b, i)
	if i >= len(b) {
		return i, problem{codeEOF, i}
	}
	if b[i] != ':' {
		return i, problem{codeExpectColon, i}
	}
	return i + 1, problem{}
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// hasZero is non-zero if some byte of x is zero.
func hasZero(x uint64) uint64 { return (x - ones) &^ x & highs }

// plainRun returns the index of the first byte at or after i that ends a
// run of plain string bytes: the first quote, backslash, control character
// or non-ASCII byte (or len(b)). It tests eight bytes at a time; the
// lowest flagged byte of a word is exact, so it jumps straight to it.
func plainRun(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		// (x-0x20*ones|x)&highs flags a byte < 0x20 or >= 0x80.
		if m := hasZero(x^('"'*ones)) | hasZero(x^('\\'*ones)) | (x-0x20*ones|x)&highs; m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
	}
	return i
}

// str scans the string whose opening quote is at b[i] and returns the
// index after its closing quote. Strings must be valid UTF-8; a \u escape
// of a UTF-16 surrogate must be a high surrogate immediately followed by
// an escaped low one (the strict choice: a lone surrogate cannot be
// turned into UTF-8, so it is an invalid_utf8 problem).
func (s *scanner) str(i int) (int, problem) {
	b := s.b
	i++
	for {
		if i = plainRun(b, i); i >= len(b) {
			return i, problem{codeEOF, i}
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, problem{}
		case c == '\\':
			s.esc = true
			var p problem
			if i, p = s.escape(i); p.code != codeNone {
				return i, p
			}
		case c < 0x20:
			return i, problem{codeControl, i}
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 && s.noteSoft(codeInvalidUTF8, i) {
				return i, problem{codeInvalidUTF8, i}
			}
			i += n
		}
	}
}

// escape scans the escape sequence whose backslash is at b[i] and returns
// the index after it.
func (s *scanner) escape(i int) (int, problem) {
	b := s.b
	if i+1 >= len(b) {
		return len(b), problem{codeEOF, len(b)}
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i + 2, problem{}
	case 'u':
	default:
		return i, problem{codeBadEscape, i}
	}
	r, ok := hex4(b, i+2)
	if !ok {
		return i, problem{codeBadEscape, i}
	}
	if r < 0xd800 || r >= 0xe000 {
		return i + 6, problem{}
	}
	if r < 0xdc00 && i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
		if r2, ok := hex4(b, i+8); ok && r2 >= 0xdc00 && r2 < 0xe000 {
			return i + 12, problem{}
		}
	}
	if s.noteSoft(codeSurrogate, i) {
		return i, problem{codeSurrogate, i}
	}
	return i + 6, problem{}
}

// hex4 decodes the four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		v := lex.Unhex[c]
		if v > 0xf {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at b[i].
// What follows the number is the caller's business.
func number(b []byte, i int) (int, problem) {
	start := i
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return i, problem{codeBadNumber, start}
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return i, problem{codeBadNumber, start}
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return j, problem{codeBadNumber, start}
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return j, problem{codeBadNumber, start}
		}
		i = j
	}
	return i, problem{}
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// literal checks that b[i:] starts with lit.
func literal(b []byte, i int, lit string) (int, problem) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, problem{codeBadLiteral, i}
	}
	return i + len(lit), problem{}
}

// skipWS returns the index of the first byte at or after i that is not
// JSON whitespace (space, tab, LF, CR).
func skipWS(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && isWS(b[i]) {
		i++
	}
	return i
}

// trimWS returns the bounds of b without leading and trailing whitespace.
func trimWS(b []byte) (int, int) {
	i, j := skipWS(b, 0), len(b)
	for j > i && isWS(b[j-1]) {
		j--
	}
	return i, j
}

func isWS(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }
