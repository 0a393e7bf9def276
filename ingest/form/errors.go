package form

import "strconv"

// Error is why Parse rejected its input. The HTTP layer answers 400 with
// Reason as the short reason and metric label. errors.Is matches any two
// *Error values with the same Reason, so callers compare against the
// sentinels below (errors.Is(err, form.ErrBadEscape)).
type Error struct {
	reason string
	detail string
	// Offset is the byte offset in the raw input where the problem is, or
	// -1 when there is none (the sentinels).
	Offset int
	// Limit is the limit that was exceeded, or 0.
	Limit int
}

// The sentinels, one per Reason. Parse returns fresh *Error values that
// carry an offset; these exist for errors.Is.
var (
	ErrBadEscape     = &Error{reason: "bad_escape", detail: "malformed percent-escape", Offset: -1}
	ErrInvalidUTF8   = &Error{reason: "invalid_utf8", detail: "invalid UTF-8", Offset: -1}
	ErrNULByte       = &Error{reason: "nul_byte", detail: "NUL byte", Offset: -1}
	ErrTooManyParams = &Error{reason: "too_many_params", detail: "too many parameters", Offset: -1}
)

// Reason is a short snake_case label for the 400 response and metrics.
func (e *Error) Reason() string { return e.reason }

// Error says what was wrong and where, e.g.
// "form: malformed percent-escape at byte 17".
func (e *Error) Error() string {
	s := "form: " + e.detail
	if e.Limit > 0 {
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
