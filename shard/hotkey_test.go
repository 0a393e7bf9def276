package shard

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func newHot(t testing.TB, rate float64, burst int) (*HotKeys, *observer.ObservedLogs) {
	t.Helper()
	c := Config{HotKeyRate: rate, HotKeyBurst: burst}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	return NewHotKeys(c, zap.New(core)), logs
}

func TestHotKeysOffByDefault(t *testing.T) {
	h := NewHotKeys(Config{}, zap.NewNop())
	if h != nil {
		t.Fatal("NewHotKeys(zero Config) is a valve, want nil (off)")
	}
	for i := range 10000 {
		if h.Overflow([]byte("k"), int64(i)) {
			t.Fatal("a nil valve overflowed a record")
		}
	}
	if h.Hot(time.Now(), 10) != nil {
		t.Fatal("a nil valve lists hot keys")
	}
}

func TestHotKeysValidate(t *testing.T) {
	for _, c := range []Config{
		{HotKeyRate: -1},
		{HotKeyRate: 2e9},
		{HotKeyRate: 10, HotKeyBurst: -1},
		{HotKeyRate: 10, HotKeyBurst: MaxHotKeyBurst + 1},
	} {
		err := c.Validate()
		if err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", c)
			continue
		}
		if !strings.Contains(err.Error(), "HotKey") {
			t.Errorf("Validate(%+v) = %v, want it to name the setting", c, err)
		}
	}
	if err := (Config{HotKeyRate: 0.5, HotKeyBurst: 3}).Validate(); err != nil {
		t.Errorf("Validate(rate 0.5, burst 3) = %v", err)
	}
}

// A key gets its burst at once, then exactly its rate; the rest is
// overflow. Once it slows down it conforms again (back to its partition).
func TestHotKeysRateAndBurst(t *testing.T) {
	h, logs := newHot(t, 100, 5) // one record per 10ms, 5 at once
	key := []byte("bot")
	now := time.Unix(1_800_000_000, 0).UnixNano()
	var home []int
	for i := range 20 {
		if !h.Overflow(key, now) {
			home = append(home, i)
		}
	}
	if len(home) != 5 || home[4] != 4 {
		t.Fatalf("at one instant, records %v stayed home, want the first 5 (the burst)", home)
	}
	// 1s at 1000 records/s: 100 conform (the rate), 900 overflow.
	kept := 0
	for i := range 1000 {
		if !h.Overflow(key, now+int64(i+1)*int64(time.Millisecond)) {
			kept++
		}
	}
	if kept < 99 || kept > 101 {
		t.Fatalf("over 1s at 1000/s, %d records stayed home, want 100 (the rate)", kept)
	}
	if got := h.hotCount(now + int64(time.Second)); got != 1 {
		t.Fatalf("hot keys = %d while it overflows, want 1", got)
	}
	if hot := h.Hot(time.Unix(0, now+int64(time.Second)), 10); len(hot) != 1 || hot[0].Key != "bot" || hot[0].Overflowed != 15+900 {
		t.Fatalf("Hot() = %+v, want bot with %d overflowed", hot, 915)
	}
	if n := logs.FilterMessageSnippet("became hot").Len(); n != 1 {
		t.Fatalf("%d 'became hot' log lines, want 1", n)
	}
	if l := logs.FilterMessage("hot shard keys").All(); len(l) != 1 || !strings.Contains(fmt.Sprint(l[0].ContextMap()["keys"]), "bot") {
		t.Fatalf("debug list of hot keys: %+v, want one line naming bot", l)
	}
	// It cools down: at 50/s (below its rate) nothing overflows, and after
	// a second it no longer counts as hot.
	later := now + 3*int64(time.Second)
	for i := range 100 {
		if h.Overflow(key, later+int64(i)*int64(20*time.Millisecond)) {
			t.Fatalf("record %d of a key below its rate overflowed", i)
		}
	}
	if got := h.hotCount(later + 2*int64(time.Second)); got != 0 {
		t.Fatalf("hot keys = %d after it cooled down, want 0", got)
	}
}

// Many quiet keys among one hot key: none of them overflows (the
// sketch's collisions stay below the rate), while the hot key does,
// and memory does not grow with the number of keys.
func TestHotKeysQuietKeysStayHome(t *testing.T) {
	const (
		rate   = 1000 // per key and second
		events = 400_000
		quiet  = 100_000 // distinct keys, 2 records each
	)
	h, _ := newHot(t, rate, 10)
	// 100,000 records/s in all, half of them one key's: 100 times the
	// per-key rate, well inside what the sketch's width resolves.
	now := time.Unix(1_800_000_000, 0).UnixNano()
	step := int64(time.Second) / 100_000
	hot := []byte("crawler")
	buf := make([]byte, 0, 32)
	var hotOver, quietOver int
	q := 0
	for i := range events {
		now += step
		if i%2 == 0 {
			if h.Overflow(hot, now) {
				hotOver++
			}
			continue
		}
		buf = strconv.AppendInt(append(buf[:0], "user-"...), int64(q%quiet), 10)
		q++
		if h.Overflow(buf, now) {
			quietOver++
		}
	}
	if quietOver != 0 {
		t.Fatalf("%d records of quiet keys overflowed, want 0", quietOver)
	}
	// The hot key sent 200,000 records over 4s at 50,000/s: all but its
	// rate (4,000) and burst (10) overflow.
	if want := events/2 - 4*rate - 10; hotOver < want-2 || hotOver > want+2 {
		t.Fatalf("hot key: %d records overflowed, want about %d", hotOver, want)
	}
}

// The table of hot keys is bounded: more hot keys than slots replace
// the coldest ones and are still counted as overflow.
func TestHotKeysTableBounded(t *testing.T) {
	h, logs := newHot(t, 1, 1)
	now := time.Unix(1_800_000_000, 0).UnixNano()
	over := 0
	for i := range 10 * hotSlots {
		k := []byte("k" + strconv.Itoa(i) + strings.Repeat("x", 100))
		for range 3 {
			if h.Overflow(k, now+int64(i)) {
				over++
			}
		}
	}
	if over != 2*10*hotSlots {
		t.Fatalf("%d records overflowed, want %d", over, 2*10*hotSlots)
	}
	hot := h.Hot(time.Unix(0, now+1), 1000)
	if len(hot) != hotSlots {
		t.Fatalf("%d keys listed, want the table's %d", len(hot), hotSlots)
	}
	for _, k := range hot {
		if len(k.Key) != hotKeyBytes {
			t.Fatalf("listed key of %d bytes, want it cut to %d", len(k.Key), hotKeyBytes)
		}
	}
	for _, k := range hot {
		if n, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimRight(k.Key, "x"), "k")); n >= hotSlots {
			t.Fatalf("key %q listed: a full table must keep the keys it listed first", k.Key)
		}
	}
	// Throttled: the first line, the rest suppressed within 10s.
	if n := logs.FilterMessageSnippet("became hot").Len(); n != 1 {
		t.Fatalf("%d 'became hot' lines for %d keys at once, want 1 (throttled)", n, 10*hotSlots)
	}
	// Once they cooled down, a new hot key takes a slot.
	later := now + 2*int64(time.Second)
	for range 3 {
		h.Overflow([]byte("late"), later)
	}
	if hot := h.Hot(time.Unix(0, later), 1000); len(hot) != 1 || hot[0].Key != "late" {
		t.Fatalf("after the others cooled down, Hot() = %+v, want only the new hot key", hot)
	}
}
