// Package lex holds what the request decoders (ingest/form and
// ingest/event) share: their error type and the hex-digit table.
package lex

import "strconv"

// Error is why a decoder rejected its input. The HTTP layer answers 400
// with Reason as the short reason and metric label. errors.Is matches two
// *Error values from the same decoder with the same Reason, so callers
// compare against the decoder's sentinels (errors.Is(err,
// form.ErrBadEscape)).
type Error struct {
	decoder string // starts the message; errors from form and event never match
	reason  string
	detail  string
	// Offset is the byte offset of the problem in the decoder's input, or
	// -1 when there is none (the sentinels).
	Offset int
	// Size is the size that was too large, or 0.
	Size int
	// Limit is the limit that was exceeded, or 0.
	Limit int
}

// Sentinel returns the error a decoder compares against for reason: it
// has no offset.
func Sentinel(decoder, reason, detail string) *Error {
	return &Error{decoder: decoder, reason: reason, detail: detail, Offset: -1}
}

// At returns a fresh error with e's reason at byte off of the input. It
// says detail, or e's detail when detail is empty.
func (e *Error) At(off int, detail string) *Error {
	if detail == "" {
		detail = e.detail
	}
	return &Error{decoder: e.decoder, reason: e.reason, detail: detail, Offset: off}
}

// Reason is a short snake_case label for the 400 response and metrics.
func (e *Error) Reason() string { return e.reason }

// Detail says what was wrong, without the decoder, sizes or offset.
func (e *Error) Detail() string { return e.detail }

// Error says what was wrong, where, and with which sizes, e.g.
// "event: expected ',' or '}' in object at byte 17".
func (e *Error) Error() string {
	s := e.decoder + ": " + e.detail
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

// Is reports whether target is an *Error from the same decoder with the
// same Reason.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.decoder == e.decoder && t.reason == e.reason
}
