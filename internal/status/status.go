// Package status is the gateway's one kind of error that maps to an HTTP
// answer: the status code, a short snake_case reason (the label of the
// rejection metrics and the start of the one-line body) and, for 429 and
// 503, how long the client should wait before retrying. The producer, the
// relay and the HTTP layer all return it, so the HTTP layer answers any of
// them the same way.
package status

import "time"

// Error is an error with an HTTP status.
type Error struct {
	code       int
	reason     string
	msg        string
	retryAfter time.Duration
}

// New returns an Error answered with code, reason and msg.
func New(code int, reason, msg string) *Error {
	return &Error{code: code, reason: reason, msg: msg}
}

// Retry returns an Error that also asks the client to wait (Retry-After).
func Retry(code int, reason, msg string, after time.Duration) *Error {
	return &Error{code: code, reason: reason, msg: msg, retryAfter: after}
}

func (e *Error) Error() string { return e.msg }

// HTTPStatus is the status code of the answer.
func (e *Error) HTTPStatus() int { return e.code }

// Reason is the short snake_case reason.
func (e *Error) Reason() string { return e.reason }

// RetryAfter is how long the client should wait, or 0.
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }
