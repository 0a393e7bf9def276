package event

import "strconv"

// Error is why an event or a batch was rejected. The HTTP layer answers
// 400 with Reason as the short reason and metric label. errors.Is matches
// any two *Error values with the same Reason, so callers compare against
// the sentinels below (errors.Is(err, event.ErrTooDeep)).
type Error struct {
	reason string
	detail string
	// Offset is the byte offset of the problem in the input given to
	// ValidateObject or Split (the whole body, not the event), or -1.
	Offset int
	// Size is the size that was too large, or 0.
	Size int
	// Limit is the limit that was exceeded, or 0.
	Limit int
}

// The sentinels, one per Reason. ErrEmpty and ErrNotObject are returned
// as they are (they need no position: an event's index and bytes go with
// it); the others are returned as fresh *Error values with an offset.
var (
	ErrEmpty         = &Error{reason: "empty", detail: "empty body", Offset: -1}
	ErrInvalidJSON   = &Error{reason: "invalid_json", detail: "invalid JSON", Offset: -1}
	ErrInvalidUTF8   = &Error{reason: "invalid_utf8", detail: "invalid UTF-8", Offset: -1}
	ErrNotObject     = &Error{reason: "not_object", detail: "event is not a JSON object", Offset: -1}
	ErrTooDeep       = &Error{reason: "too_deep", detail: "nesting too deep", Offset: -1}
	ErrEventTooLarge = &Error{reason: "event_too_large", detail: "event too large", Offset: -1}
	ErrTooManyEvents = &Error{reason: "too_many_events", detail: "too many events in batch", Offset: -1}
	ErrNotBatch      = &Error{reason: "not_batch", detail: "batch is neither a JSON array nor NDJSON objects", Offset: -1}
)

// Reason is a short snake_case label for the 400 response and metrics.
func (e *Error) Reason() string { return e.reason }

// Error says what was wrong, where, and with which sizes, e.g.
// "event: expected ',' or '}' in object at byte 17".
func (e *Error) Error() string {
	s := "event: " + e.detail
	if e.Size > 0 {
		s += " (" + strconv.Itoa(e.Size) + " bytes, limit " + strconv.Itoa(e.Limit) + ")"
	} else if e.Limit > 0 {
		s += " (limit " + strconv.Itoa(e.Limit) + ")"
	}
	if e.Offset >= 0 {
		s += " at byte " + strconv.Itoa(e.Offset)
	}
	return s
}

// Is reports whether target is an *Error with the same Reason.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.reason == e.reason
}

// code names a problem found while scanning. Scanning records a code and
// an offset; an *Error is only built when one is returned, so the scanner
// itself never allocates.
type code uint8

const (
	codeNone code = iota
	codeEOF
	codeExpectValue
	codeExpectKey
	codeExpectColon
	codeExpectObjectNext
	codeExpectArrayNext
	codeBadNumber
	codeBadLiteral
	codeBadEscape
	codeControl
	codeTrailing
	codeBOM
	codeInvalidUTF8
	codeSurrogate
	codeTooDeep
)

var codes = [...]struct {
	kind   *Error
	detail string
}{
	codeEOF:              {ErrInvalidJSON, "unexpected end of input"},
	codeExpectValue:      {ErrInvalidJSON, "expected a value"},
	codeExpectKey:        {ErrInvalidJSON, "expected a string key"},
	codeExpectColon:      {ErrInvalidJSON, "expected ':' after key"},
	codeExpectObjectNext: {ErrInvalidJSON, "expected ',' or '}' in object"},
	codeExpectArrayNext:  {ErrInvalidJSON, "expected ',' or ']' in array"},
	codeBadNumber:        {ErrInvalidJSON, "malformed number"},
	codeBadLiteral:       {ErrInvalidJSON, "malformed literal"},
	codeBadEscape:        {ErrInvalidJSON, "invalid escape in string"},
	codeControl:          {ErrInvalidJSON, "control character in string"},
	codeTrailing:         {ErrInvalidJSON, "trailing data after value"},
	codeBOM:              {ErrInvalidJSON, "byte order mark not allowed"},
	codeInvalidUTF8:      {ErrInvalidUTF8, "invalid UTF-8 in string"},
	codeSurrogate:        {ErrInvalidUTF8, "unpaired UTF-16 surrogate escape"},
	codeTooDeep:          {ErrTooDeep, "nesting deeper than the limit"},
}

// problem is a scan result: a code (codeNone for none) and where.
type problem struct {
	code code
	off  int
}

// err builds the *Error for p; maxDepth fills in the limit for too_deep.
func (p problem) err(maxDepth int) *Error {
	c := codes[p.code]
	e := &Error{reason: c.kind.reason, detail: c.detail, Offset: p.off}
	if p.code == codeTooDeep {
		e.Limit = maxDepth
	}
	return e
}

func tooLarge(off, size, limit int) *Error {
	return &Error{reason: ErrEventTooLarge.reason, detail: ErrEventTooLarge.detail, Offset: off, Size: size, Limit: limit}
}
