package form

import "github.com/beacongate/beacongate/ingest/internal/lex"

// Error is why Parse rejected its input. The HTTP layer answers 400 with
// Reason as the short reason and metric label. errors.Is matches any two
// *Error values from this package with the same Reason, so callers
// compare against the sentinels below (errors.Is(err, form.ErrBadEscape)).
// Offset is the byte offset in the raw input where the problem is, or -1
// when there is none (the sentinels); Limit is the limit that was
// exceeded, or 0.
type Error = lex.Error

// The sentinels, one per Reason. Parse returns fresh *Error values that
// carry an offset; these exist for errors.Is.
var (
	ErrBadEscape     = lex.Sentinel("form", "bad_escape", "malformed percent-escape")
	ErrInvalidUTF8   = lex.Sentinel("form", "invalid_utf8", "invalid UTF-8")
	ErrNULByte       = lex.Sentinel("form", "nul_byte", "NUL byte")
	ErrTooManyParams = lex.Sentinel("form", "too_many_params", "too many parameters")
)
