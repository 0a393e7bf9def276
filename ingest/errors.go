package ingest

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/beacongate/beacongate/ingest/event"
	"github.com/beacongate/beacongate/internal/status"
)

// StatusError is an error that maps to an HTTP response: the status, a
// short snake_case reason (the `reason` label of the rejection counters)
// and, for 429/503, how long the client should wait. Errors from the
// decoders and the Sink are matched against it with errors.As.
type StatusError interface {
	error
	HTTPStatus() int
	Reason() string
}

// retryAfterer is implemented by StatusErrors that ask for Retry-After.
type retryAfterer interface{ RetryAfter() time.Duration }

// Preallocated rejections: hostile traffic must not cost an allocation per
// rejected request.
var (
	errNotFound        = status.New(http.StatusNotFound, "not_found", "no such endpoint")
	errMethod          = status.New(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this endpoint")
	errEmptyBody       = status.New(http.StatusBadRequest, "empty", "request body is empty")
	errURITooLong      = status.New(http.StatusRequestURITooLong, "uri_too_long", "request URI is longer than the limit")
	errContentType     = status.New(http.StatusUnsupportedMediaType, "unsupported_content_type", "unsupported Content-Type (want application/json, text/plain or application/x-www-form-urlencoded)")
	errContentEncoding = status.New(http.StatusUnsupportedMediaType, "unsupported_content_encoding", "unsupported Content-Encoding")
)

// badRequest wraps a decoder error (which carries a Reason) as a 400.
func badRequest(err error) StatusError {
	var se StatusError
	if errors.As(err, &se) {
		return se
	}
	reason := "bad_request"
	var r interface{ Reason() string }
	if errors.As(err, &r) {
		reason = r.Reason()
	}
	code := http.StatusBadRequest
	if errors.Is(err, event.ErrEventTooLarge) || errors.Is(err, event.ErrTooManyEvents) {
		// Size limits are 413 like the body limit, so clients can tell
		// "too much" from "malformed".
		code = http.StatusRequestEntityTooLarge
	}
	return status.New(code, reason, err.Error())
}

// asStatus maps any error to a StatusError; an unknown error is a 500,
// which a test treats as a bug.
func asStatus(err error) StatusError {
	var se StatusError
	if errors.As(err, &se) {
		return se
	}
	return status.New(http.StatusInternalServerError, "internal", fmt.Sprintf("internal error: %v", err))
}
