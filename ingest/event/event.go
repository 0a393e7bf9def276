// Package event validates and splits JSON events on the hot path without
// allocating: ValidateObject checks one event (a JSON object), Split cuts
// a batch body (a JSON array or NDJSON) into events, and Field reads a
// top-level member such as the shard key. ValidateObjectFields and
// SplitFields also note chosen top-level members while they validate
// (Fields), so that reading them costs no second walk over the event.
//
// Validation is strict RFC 8259, stricter than encoding/json where the
// input is hostile: strings must be valid UTF-8, a \u escape of a UTF-16
// surrogate must be a correctly paired high+low escape (a lone or
// mismatched surrogate is invalid_utf8, since it has no UTF-8 encoding),
// and a byte order mark is rejected. Depth is the number of containers
// enclosing a byte, counting the event object itself (so "{}" has depth
// 1); the array of a batch does not count.
package event

// The defaults used for zero Limits fields, and the cap on MaxDepth.
const (
	DefaultMaxDepth      = 64
	DefaultMaxEventBytes = 64 << 10
	DefaultMaxEvents     = 10000
	// MaxDepthCap bounds MaxDepth: the validator tracks open containers in
	// a fixed bit stack so that it never allocates. Larger MaxDepth values
	// are treated as MaxDepthCap.
	MaxDepthCap = 1024
)

// Limits bound what ValidateObject and Split accept; zero (or negative)
// fields mean the defaults.
type Limits struct {
	MaxDepth      int // nesting depth inside an event; 0 = 64, at most MaxDepthCap
	MaxEventBytes int // one event's JSON size, without surrounding whitespace; 0 = 64 KiB
	MaxEvents     int // events in one batch body; 0 = 10000
}

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	l.MaxDepth = min(l.MaxDepth, MaxDepthCap)
	if l.MaxEventBytes <= 0 {
		l.MaxEventBytes = DefaultMaxEventBytes
	}
	if l.MaxEvents <= 0 {
		l.MaxEvents = DefaultMaxEvents
	}
	return l
}

// ValidateObject checks that b, with optional surrounding JSON whitespace,
// is exactly one JSON object within lim (under the strict rules in the
// package doc), and returns the object without the whitespace (a
// sub-slice of b).
//
// Errors: ErrEmpty for nothing but whitespace; ErrEventTooLarge, decided
// before scanning; ErrNotObject for a valid JSON value that is not an
// object; otherwise an *Error with an offset in b and reason
// invalid_json, invalid_utf8 or too_deep. The scan stops at the first
// problem.
func ValidateObject(b []byte, lim Limits) ([]byte, error) {
	start, end, err := validateObject(b, lim, nil)
	if err != nil {
		return nil, err
	}
	return b[start:end], nil
}

// ValidateObjectFields is ValidateObject that also notes, in f (if not
// nil), the members f.Names of the object in f.Vals, as SplitFields does
// for each event of a batch; f.Vals is all nil after an error.
func ValidateObjectFields(b []byte, lim Limits, f *Fields) ([]byte, error) {
	f.size()
	f.reset()
	start, end, err := validateObject(b, lim, f)
	if err != nil {
		f.reset()
		return nil, err
	}
	f.fill(b)
	return b[start:end], nil
}

// validateObject is ValidateObject returning offsets: b does not escape
// through f (a slice stored in *Fields would move every caller's b to
// the heap).
func validateObject(b []byte, lim Limits, f *Fields) (start, end int, err error) {
	lim = lim.withDefaults()
	start, end = trimWS(b)
	if start == end {
		return 0, 0, ErrEmpty
	}
	if end-start > lim.MaxEventBytes {
		return 0, 0, tooLarge(start, end-start, lim.MaxEventBytes)
	}
	s := scanner{b: b[:end], maxDepth: lim.MaxDepth, fields: f}
	if p := s.event(start); p.code != codeNone {
		return 0, 0, p.err(lim.MaxDepth)
	}
	if b[start] != '{' {
		return 0, 0, ErrNotObject
	}
	return start, end, nil
}

// event scans s.b[start:] as exactly one JSON value: whatever follows the
// value is trailing data.
func (s *scanner) event(start int) problem {
	end, p := s.value(start)
	if p.code == codeExpectValue && p.off == start && hasBOM(s.b[start:]) {
		p.code = codeBOM
	}
	if p.code == codeNone && end != len(s.b) {
		p = problem{codeTrailing, skipWS(s.b, end)}
	}
	return p
}

func hasBOM(b []byte) bool { return len(b) >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf }
