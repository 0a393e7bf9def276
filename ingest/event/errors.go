package event

import "github.com/beacongate/beacongate/ingest/internal/lex"

// Error is why an event or a batch was rejected. The HTTP layer answers
// 400 with Reason as the short reason and metric label. errors.Is matches
// any two *Error values from this package with the same Reason, so
// callers compare against the sentinels below (errors.Is(err,
// event.ErrTooDeep)). Offset is the byte offset of the problem in the
// input given to ValidateObject or Split (the whole body, not the event),
// or -1; Size is the size that was too large, or 0; Limit is the limit
// that was exceeded, or 0.
type Error = lex.Error

// The sentinels, one per Reason. ErrEmpty and ErrNotObject are returned
// as they are (they need no position: an event's index and bytes go with
// it); the others are returned as fresh *Error values with an offset.
var (
	ErrEmpty         = lex.Sentinel("event", "empty", "empty body")
	ErrInvalidJSON   = lex.Sentinel("event", "invalid_json", "invalid JSON")
	ErrInvalidUTF8   = lex.Sentinel("event", "invalid_utf8", "invalid UTF-8")
	ErrNotObject     = lex.Sentinel("event", "not_object", "event is not a JSON object")
	ErrTooDeep       = lex.Sentinel("event", "too_deep", "nesting too deep")
	ErrEventTooLarge = lex.Sentinel("event", "event_too_large", "event too large")
	ErrTooManyEvents = lex.Sentinel("event", "too_many_events", "too many events in batch")
	ErrNotBatch      = lex.Sentinel("event", "not_batch", "batch is neither a JSON array nor NDJSON objects")
)

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
	e := c.kind.At(p.off, c.detail)
	if p.code == codeTooDeep {
		e.Limit = maxDepth
	}
	return e
}

func tooLarge(off, size, limit int) *Error {
	e := ErrEventTooLarge.At(off, "")
	e.Size, e.Limit = size, limit
	return e
}
