package throttle

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestThrottleCountsSuppressed(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	l := New(zap.New(core), time.Minute)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }

	for i := 0; i < 5; i++ {
		l.Warn("k", "broker down")
	}
	l.Error("other", "different key is not throttled by k")
	if got := logs.Len(); got != 2 {
		t.Fatalf("logged %d lines, want 2 (one per key)", got)
	}
	now = now.Add(time.Minute)
	l.Warn("k", "broker down")
	all := logs.All()
	if len(all) != 3 {
		t.Fatalf("logged %d lines after the interval, want 3", len(all))
	}
	if got := all[2].ContextMap()["suppressed_since_last"]; got != uint64(4) {
		t.Fatalf("suppressed_since_last = %v, want 4", got)
	}
}
