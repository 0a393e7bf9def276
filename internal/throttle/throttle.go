// Package throttle keeps repeated log lines from flooding the log: a line
// with a given key is written at most once per interval, and the next one
// that is written says how many were suppressed in between.
package throttle

import (
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Logger throttles zap log lines per key. The zero value is not usable;
// call New. It is safe for concurrent use.
type Logger struct {
	log      *zap.Logger
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	keys map[string]*entry
}

type entry struct {
	last       time.Time
	suppressed uint64
}

// New returns a Logger writing to log at most once per interval per key
// (interval <= 0 means 10s).
func New(log *zap.Logger, interval time.Duration) *Logger {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	return &Logger{log: log, interval: interval, now: time.Now, keys: make(map[string]*entry)}
}

// Warn logs msg at warn level unless a line with the same key was written
// less than the interval ago.
func (l *Logger) Warn(key, msg string, fields ...zap.Field) {
	l.write(zapcore.WarnLevel, key, msg, fields)
}

// Error logs msg at error level, throttled like Warn.
func (l *Logger) Error(key, msg string, fields ...zap.Field) {
	l.write(zapcore.ErrorLevel, key, msg, fields)
}

func (l *Logger) write(level zapcore.Level, key, msg string, fields []zap.Field) {
	now := l.now()
	l.mu.Lock()
	e := l.keys[key]
	if e == nil {
		// Keys are a small fixed set (error kinds), so the map stays small.
		e = &entry{}
		l.keys[key] = e
	} else if now.Sub(e.last) < l.interval {
		e.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := e.suppressed
	e.suppressed = 0
	e.last = now
	l.mu.Unlock()
	if ce := l.log.Check(level, msg); ce != nil {
		ce.Write(append(fields, zap.Uint64("suppressed_since_last", suppressed))...)
	}
}
