package shard

import (
	"fmt"
	"hash/maphash"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/throttle"
)

// The hot-key valve (docs/hotkeys.md). A key's records above
// Config.HotKeyRate events/s (after a burst of Config.HotKeyBurst) are its
// overflow: they are marked and spread over the topic's partitions, while
// the key's conforming records, and every other key's, stay on their
// partition in order.
//
// Each key is rate-limited by GCRA (the virtual-scheduling form of a token
// bucket: one "theoretical arrival time" per key) kept in a count-min
// sketch instead of a map: sketchRows rows of sketchWidth cells, a key's
// cell in each row picked by one 64-bit hash. A cell's time is never
// below the time of any key that maps to it (it only ever takes the
// largest), so the minimum over a key's cells bounds its own from above:
// a collision can make a quiet key look hot, never a hot key look quiet,
// and it needs all sketchRows cells shared with hotter keys. Updates are
// conservative (a cell is raised only to the key's own new time), which
// keeps quiet keys' cells low. Memory is fixed (sketchRows × sketchWidth
// × 8 bytes = 256 KiB) whatever the number of keys, an event costs one
// hash and sketchRows atomic operations, and nothing allocates. A
// space-saving top-k was measured against it: see hotkey_timing_test.go.
const (
	sketchRows  = 4
	sketchBits  = 13
	sketchWidth = 1 << sketchBits
)

// hotSlots bounds the table of keys that overflowed recently, which
// serves the hot-keys gauge, the "became hot" log line and the debug
// list; a key beyond it still overflows, it is only not listed (nor
// logged) until a listed key cools down.
const hotSlots = 32

// hotKeyBytes is how much of a hot key the table keeps, for the logs.
const hotKeyBytes = 64

// coolAfter is how long after its last overflowed record a key stops
// counting as hot (the gauge, and a new "became hot" line next time).
const coolAfter = time.Second

// HotKeys is the hot-key valve. The zero value is not usable; a nil
// *HotKeys is the valve turned off (Overflow is always false). It is safe
// for concurrent use.
type HotKeys struct {
	seed      maphash.Seed
	interval  int64 // ns between two conforming records of one key
	tolerance int64 // ns a key's time may run ahead of now (the burst)
	cells     [sketchRows][sketchWidth]atomic.Int64

	slots  [hotSlots]hotSlot
	mu     sync.Mutex   // inserting into slots
	full   atomic.Int64 // when insert last found every slot hot
	listed atomic.Int64
	log    *zap.Logger
	thr    *throttle.Logger
}

type hotSlot struct {
	hash       atomic.Uint64 // 0: free
	last       atomic.Int64  // ns of the last overflowed record (coarse: see note)
	overflowed atomic.Int64
	since      int64 // written under HotKeys.mu before hash
	n          int
	key        [hotKeyBytes]byte
}

// NewHotKeys returns the valve for c, or nil when c.HotKeyRate is 0 (off).
func NewHotKeys(c Config, log *zap.Logger) *HotKeys {
	if c.HotKeyRate <= 0 {
		return nil
	}
	burst := c.hotKeyBurst()
	interval := int64(math.Max(1, float64(time.Second)/c.HotKeyRate))
	h := &HotKeys{
		seed:      maphash.MakeSeed(),
		interval:  interval,
		tolerance: int64(burst-1) * interval,
		log:       log,
		thr:       throttle.New(log, 10*time.Second),
	}
	// The earliest time, not 0: a clock that reads before 1970 (a test's
	// zero time) must still find quiet keys quiet.
	for r := range h.cells {
		for i := range h.cells[r] {
			h.cells[r][i].Store(math.MinInt64)
		}
	}
	h.full.Store(math.MinInt64)
	activeHotKeys.Store(h)
	return h
}

// hotKeyBurst is HotKeyBurst, or one second's worth of HotKeyRate (at
// least 1) when it is 0.
func (c Config) hotKeyBurst() int {
	if c.HotKeyBurst > 0 {
		return c.HotKeyBurst
	}
	return int(max(1, math.Ceil(c.HotKeyRate)))
}

func (c Config) validateHotKeys() error {
	switch {
	case math.IsNaN(c.HotKeyRate) || math.IsInf(c.HotKeyRate, 0) || c.HotKeyRate < 0 || c.HotKeyRate > MaxHotKeyRate:
		return fmt.Errorf("shard: Config.HotKeyRate = %v events/s: want 0 (off) or up to %v", c.HotKeyRate, float64(MaxHotKeyRate))
	case c.HotKeyBurst < 0 || c.HotKeyBurst > MaxHotKeyBurst:
		return fmt.Errorf("shard: Config.HotKeyBurst = %d events: want 0 (one second of HotKeyRate) to %d", c.HotKeyBurst, MaxHotKeyBurst)
	}
	return nil
}

// Bounds on the valve's settings: a key can be limited to one record per
// nanosecond at most, and its burst to what fits a time in int64.
const (
	MaxHotKeyRate  = 1e9
	MaxHotKeyBurst = 1 << 30
)

// Overflow counts one record of key at now (Unix ns) and reports whether
// it is overflow: the key is over its rate and this record should leave
// the key's partition. A nil h, or an empty key (which librdkafka spreads
// anyway), is never overflow. It does not allocate.
func (h *HotKeys) Overflow(key []byte, now int64) bool {
	if h == nil || len(key) == 0 {
		return false
	}
	hash := maphash.Bytes(h.seed, key)
	var idx [sketchRows]uint64
	tat := int64(math.MaxInt64)
	for r := range sketchRows {
		idx[r] = (hash >> (r * sketchBits)) & (sketchWidth - 1)
		tat = min(tat, h.cells[r][idx[r]].Load())
	}
	tat = max(tat, now)
	if tat-now > h.tolerance {
		h.overflowed(hash, key, now)
		return true
	}
	next := tat + h.interval
	for r := range sketchRows {
		c := &h.cells[r][idx[r]]
		for {
			old := c.Load()
			if old >= next || c.CompareAndSwap(old, next) {
				break
			}
		}
	}
	return false
}

// overflowed counts an overflowed record and keeps its key in the table.
func (h *HotKeys) overflowed(hash uint64, key []byte, now int64) {
	overflowedTotal.Inc()
	hash |= 1 // 0 marks a free slot
	for i := range h.slots {
		s := &h.slots[i]
		if s.hash.Load() == hash {
			s.overflowed.Add(1)
			// Written only when it moved on, so the hot key's records do
			// not all write one cache line.
			if now-s.last.Load() > int64(coolAfter/10) {
				s.last.Store(now)
			}
			h.maybeList(now)
			return
		}
	}
	// With every slot hot, the lock is not tried again for a while: many
	// keys overflowing at once must not all queue on it.
	if f := h.full.Load(); f != math.MinInt64 && now >= f && now-f < int64(coolAfter/10) {
		return
	}
	h.insert(hash, key, now)
}

// insert lists a key that became hot in a free or cooled slot. When all
// are hot, the key overflows unlisted: the hot keys already listed stay
// (they are the ones a reader of the log was told about).
func (h *HotKeys) insert(hash uint64, key []byte, now int64) {
	h.mu.Lock()
	victim := -1
	for i := range h.slots {
		s := &h.slots[i]
		switch hs := s.hash.Load(); {
		case hs == hash:
			h.mu.Unlock() // another request listed it meanwhile
			s.overflowed.Add(1)
			return
		case victim < 0 && (hs == 0 || now-s.last.Load() >= int64(coolAfter)):
			victim = i
		}
	}
	if victim < 0 {
		h.full.Store(now)
		h.mu.Unlock()
		return
	}
	s := &h.slots[victim]
	s.hash.Store(0)
	s.n = copy(s.key[:], key)
	s.since = now
	s.overflowed.Store(1)
	s.last.Store(now)
	s.hash.Store(hash)
	shown := string(s.key[:s.n])
	h.mu.Unlock()
	h.thr.Warn("hot-key", "shard key became hot: its records above the rate are spread over the partitions, out of order",
		zap.String("key", shown), zap.Bool("key_cut", len(key) > hotKeyBytes),
		zap.Float64("rate_per_second", float64(time.Second)/float64(h.interval)),
		zap.Int64("burst", h.tolerance/h.interval+1))
}

// maybeList writes the debug list of hot keys at most every 10s while
// keys overflow.
func (h *HotKeys) maybeList(now int64) {
	last := h.listed.Load()
	if now-last < int64(10*time.Second) || !h.listed.CompareAndSwap(last, now) {
		return
	}
	if ce := h.log.Check(zap.DebugLevel, "hot shard keys"); ce != nil {
		top := h.Hot(time.Unix(0, now), 10)
		keys := make([]string, len(top))
		counts := make([]int64, len(top))
		for i, k := range top {
			keys[i], counts[i] = k.Key, k.Overflowed
		}
		ce.Write(zap.Strings("keys", keys), zap.Int64s("overflowed", counts))
	}
}

// HotKey is one listed hot key.
type HotKey struct {
	Key        string // cut to 64 bytes
	Overflowed int64  // records overflowed since it became hot
	Since      time.Time
}

// Hot lists up to n keys that overflowed within the last second before
// now, most overflowed first.
func (h *HotKeys) Hot(now time.Time, n int) []HotKey {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	var out []HotKey
	for i := range h.slots {
		s := &h.slots[i]
		if s.hash.Load() == 0 || now.UnixNano()-s.last.Load() >= int64(coolAfter) {
			continue
		}
		out = append(out, HotKey{Key: string(s.key[:s.n]), Overflowed: s.overflowed.Load(), Since: time.Unix(0, s.since)})
	}
	h.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Overflowed > out[j].Overflowed })
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// hotCount is the number of keys that overflowed within the last second.
func (h *HotKeys) hotCount(now int64) int {
	n := 0
	for i := range h.slots {
		s := &h.slots[i]
		if s.hash.Load() != 0 && now-s.last.Load() < int64(coolAfter) {
			n++
		}
	}
	return n
}
