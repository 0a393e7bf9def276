package shard

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// DefaultMaxKeyBytes is the key cap used when Config.MaxKeyBytes is 0.
const DefaultMaxKeyBytes = 256

// Bounds on Config.MaxKeyBytes: a shorter cap would merge unrelated users
// into one key, a longer one only costs broker memory for no spreading gain.
const (
	MinMaxKeyBytes = 8
	MaxMaxKeyBytes = 1 << 16
)

// Config is the shard-key configuration; its zero value is the default.
type Config struct {
	// Sources is the ordered source list (see ParseSources); "" means DefaultSources.
	Sources string
	// Prefix optionally names one source (e.g. "query:sid") whose value, when present,
	// goes before the key with ":" between, so one site's users never share keys
	// with another's. "" (or blank) = no prefix.
	Prefix string
	// MaxKeyBytes caps the key (prefix included); 0 means DefaultMaxKeyBytes.
	// Longer keys are cut at the cap, never inside a UTF-8 sequence (so a
	// key may be up to 3 bytes shorter). The cut is deterministic, so per-key order still holds for
	// the truncated key; ids that differ only past the cap share a key.
	MaxKeyBytes int
	// HotKeyRate is the hot-key valve (hotkey.go, docs/hotkeys.md): a
	// key's records above this many per second, per gateway, are overflow,
	// spread over the partitions. 0 = off: every record stays on its key's
	// partition.
	HotKeyRate float64
	// HotKeyBurst is how many records a key may send at once before its
	// rate counts; 0 = one second of HotKeyRate.
	HotKeyBurst int
}

// Validate reports whether c can be used by New.
func (c Config) Validate() error {
	_, _, _, err := c.compile()
	return err
}

// compile parses c once for both Validate and New.
func (c Config) compile() (srcs []Source, prefix Source, maxLen int, err error) {
	srcs, err = parseSources(c.Sources)
	if err != nil {
		return nil, Source{}, 0, fmt.Errorf("shard: Config.Sources: %w", err)
	}
	if strings.TrimSpace(c.Prefix) != "" {
		ps, err := parseSources(c.Prefix)
		if err != nil {
			return nil, Source{}, 0, fmt.Errorf("shard: Config.Prefix: %w", err)
		}
		if len(ps) != 1 {
			return nil, Source{}, 0, fmt.Errorf("shard: Config.Prefix %q: want exactly one source, got %d", c.Prefix, len(ps))
		}
		prefix = ps[0]
	}
	switch maxLen = c.MaxKeyBytes; {
	case maxLen == 0:
		maxLen = DefaultMaxKeyBytes
	case maxLen < MinMaxKeyBytes || maxLen > MaxMaxKeyBytes:
		return nil, Source{}, 0, fmt.Errorf("shard: Config.MaxKeyBytes = %d: want 0 (default %d) or %d..%d",
			maxLen, DefaultMaxKeyBytes, MinMaxKeyBytes, MaxMaxKeyBytes)
	}
	if err := c.validateHotKeys(); err != nil {
		return nil, Source{}, 0, err
	}
	return srcs, prefix, maxLen, nil
}

// Event gives the keyer access to one event's fields without copying. Lookup returns nil
// or empty when the source is absent. For KindIP it returns the client IP in printable
// form (e.g. "203.0.113.7"). For KindHeader, name is in canonical MIME form.
// The keyer only reads the returned bytes and does not keep them.
type Event interface {
	Lookup(kind Kind, name string) []byte
}

// Keyer derives shard keys (Kafka record keys) from events. It is immutable
// and safe for concurrent use.
//
// The key, not the partition, is the contract with consumers and other
// producers: the partition follows from (murmur2(key) & 0x7fffffff) % the
// topic's partition count (see Partition), so adding partitions moves keys,
// as it does for every Kafka producer. Changing Sources, Prefix or
// MaxKeyBytes changes keys and so breaks per-key order across the change.
type Keyer struct {
	sources   []Source
	prefix    Source // Kind 0 means no prefix
	maxKeyLen int
}

// New returns a Keyer for c, or the error Validate would report.
func New(c Config) (*Keyer, error) {
	srcs, prefix, maxLen, err := c.compile()
	if err != nil {
		return nil, err
	}
	return &Keyer{sources: srcs, prefix: prefix, maxKeyLen: maxLen}, nil
}

// AppendKey appends the event's shard key to dst and returns it; dst unchanged if no source has a value.
//
// The key is the first non-empty source value, preceded by the prefix
// source's value and ":" when a prefix is configured and present, cut to
// MaxKeyBytes, and valid UTF-8 (utf8.go: invalid bytes become U+FFFD as
// in the record's shard_key, so the two are the same bytes). It does not allocate when dst has room for the key.
func (k *Keyer) AppendKey(dst []byte, ev Event) []byte {
	var v []byte
	for _, s := range k.sources {
		if v = ev.Lookup(s.Kind, s.Name); len(v) > 0 {
			break
		}
	}
	if len(v) == 0 {
		return dst
	}
	room := k.maxKeyLen
	if k.prefix.Kind != 0 {
		if p := ev.Lookup(k.prefix.Kind, k.prefix.Name); len(p) > 0 {
			n := textLen(p)
			if n >= room {
				return appendText(dst, p, room)
			}
			dst = appendText(dst, p, room)
			room -= n
			dst = append(dst, ':')
			room--
		}
	}
	return appendText(dst, v, room)
}

// Names returns the names of the sources of kind, the prefix's included,
// each once, in the order AppendKey may look them up: what a caller can
// gather while it reads an event, before AppendKey asks for them.
func (k *Keyer) Names(kind Kind) []string {
	var names []string
	add := func(s Source) {
		if s.Kind == kind && !slices.Contains(names, s.Name) {
			names = append(names, s.Name)
		}
	}
	for _, s := range k.sources {
		add(s)
	}
	add(k.prefix)
	return names
}

// cut shortens b to at most n bytes without splitting a UTF-8 sequence:
// the key is also the record's shard_key string field, which must stay
// valid UTF-8 and equal to the Kafka key.
func cut(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return b[:n]
}
