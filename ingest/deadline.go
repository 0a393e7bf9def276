package ingest

import (
	"errors"
	"net"
	"sync/atomic"
	"time"
)

// fasthttp moves a keep-alive connection's read deadline twice per
// request (the idle wait, then the read timeout) and its write deadline
// once. Each move is a time.Now and an update of the runtime's netpoll
// timer (a lock and a heap sift), about 2% of a pixel's CPU. On a busy
// connection the deadlines asked for only ever move later, so sniffConn
// arms them lazily:
//
//   - a deadline later than the one armed is only remembered (want); the
//     earlier one stays armed;
//   - when the armed one fires first, the read (write) fails with a
//     timeout, and sniffConn arms the remembered deadline and retries, so
//     a timeout still ends the read at the time asked for (later only by
//     the retry's microseconds), never earlier;
//   - a deadline earlier than the one armed, or the first one, is armed at
//     once.
//
// A busy connection so arms its read deadline about once per read
// timeout, not twice per request. The race it must not lose: the armed
// deadline fires just as fasthttp asks for a later one. The timer only
// marks the connection timed out; the read that sees it comes to refire,
// which compares the clock with want as it is then. Deadlines are Unix
// nanoseconds in atomics: another goroutine may set one (to interrupt a
// read), and the last one set wins, as on the connection itself.
type lazyDeadline struct {
	want   atomic.Int64 // the deadline asked for last; 0: none
	armed  atomic.Int64 // the one set on the connection; 0: none
	rearms atomic.Int64 // armed deadlines that fired early and were moved (tests)
}

// deadlineNanos is t as Unix nanoseconds, 0 for the zero time (none).
func deadlineNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixNano(), 1)
}

// set records t as the deadline asked for and reports whether it must be
// armed on the connection now.
func (d *lazyDeadline) set(t time.Time) bool {
	w := deadlineNanos(t)
	d.want.Store(w)
	a := d.armed.Load()
	if a != 0 && (w == 0 || w >= a) {
		return false // an earlier deadline is armed; refire arms w when it fires
	}
	if a == 0 && w == 0 {
		return false // none armed, none asked for
	}
	d.armed.Store(w)
	return true
}

// refire reports whether err is the armed deadline firing before the one
// asked for; if so it has armed that one with arm, and the caller retries.
func (d *lazyDeadline) refire(err error, arm func(time.Time) error) bool {
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return false
	}
	w, a := d.want.Load(), d.armed.Load()
	if w != 0 && (w <= a || time.Now().UnixNano() >= w) {
		return false // the deadline asked for has passed: a real timeout
	}
	d.armed.Store(w)
	d.rearms.Add(1)
	var t time.Time
	if w != 0 {
		t = time.Unix(0, w)
	}
	return arm(t) == nil
}
