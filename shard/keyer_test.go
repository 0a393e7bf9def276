package shard

import (
	"slices"
	"strings"
	"testing"
)

// fakeEvent is an Event backed by a map; pointer receiver as a real one would be.
type fakeEvent struct {
	vals map[Source][]byte
}

func (e *fakeEvent) Lookup(kind Kind, name string) []byte {
	return e.vals[Source{kind, name}]
}

func ev(kv ...string) *fakeEvent {
	e := &fakeEvent{vals: map[Source][]byte{}}
	for i := 0; i < len(kv); i += 2 {
		s, err := parseSource(kv[i])
		if err != nil {
			panic("BUG: bad test source " + kv[i])
		}
		e.vals[s] = []byte(kv[i+1])
	}
	return e
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{},
		{Sources: "header:X-Uid,ip", Prefix: "query:sid", MaxKeyBytes: 64},
		{MaxKeyBytes: MinMaxKeyBytes},
		{MaxKeyBytes: MaxMaxKeyBytes},
		{Prefix: " header:x-site "},
		{Prefix: " "}, // blank means no prefix
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v.Validate() = %v, want nil", c, err)
		}
	}
	for _, c := range []struct {
		c   Config
		msg string
	}{
		{Config{Sources: "query:uid,jsn:x"}, `shard: Config.Sources: source 2 "jsn:x": unknown kind "jsn" (want query, json, header, cookie or ip)`},
		{Config{Prefix: "site"}, `shard: Config.Prefix: source 1 "site": unknown kind "site" (want query, json, header, cookie or ip)`},
		{Config{Prefix: "query:sid,json:sid"}, `shard: Config.Prefix "query:sid,json:sid": want exactly one source, got 2`},
		{Config{MaxKeyBytes: -1}, `shard: Config.MaxKeyBytes = -1: want 0 (default 256) or 8..65536`},
		{Config{MaxKeyBytes: 7}, `shard: Config.MaxKeyBytes = 7: want 0 (default 256) or 8..65536`},
		{Config{MaxKeyBytes: 1<<16 + 1}, `shard: Config.MaxKeyBytes = 65537: want 0 (default 256) or 8..65536`},
	} {
		err := c.c.Validate()
		if err == nil || err.Error() != c.msg {
			t.Errorf("%+v.Validate() = %v, want %s", c.c, err, c.msg)
		}
		if k, err2 := New(c.c); k != nil || err2 == nil || err2.Error() != err.Error() {
			t.Errorf("New(%+v) = %v, %v; want nil and the Validate error", c.c, k, err2)
		}
	}
}

func TestAppendKey(t *testing.T) {
	def := mustNew(t, Config{})
	pre := mustNew(t, Config{Prefix: "query:sid"})
	for _, c := range []struct {
		name string
		k    *Keyer
		ev   *fakeEvent
		want string
	}{
		{"first source", def, ev("query:uid", "u1", "json:user_id", "u2", "ip", "203.0.113.7"), "u1"},
		{"empty value skipped", def, ev("query:uid", "", "json:user_id", "u2", "ip", "203.0.113.7"), "u2"},
		{"later source", def, ev("json:anonymous_id", "anon-1", "ip", "203.0.113.7"), "anon-1"},
		{"ip fallback", def, ev("ip", "203.0.113.7"), "203.0.113.7"},
		{"prefix", pre, ev("query:sid", "site7", "query:uid", "u1"), "site7:u1"},
		{"prefix absent", pre, ev("query:uid", "u1"), "u1"},
		{"prefix empty", pre, ev("query:sid", "", "query:uid", "u1"), "u1"},
		{"prefix with ip fallback", pre, ev("query:sid", "site7", "ip", "2001:db8::1"), "site7:2001:db8::1"},
		{"truncated", def, ev("query:uid", strings.Repeat("x", 300)), strings.Repeat("x", 256)},
		{"exactly at cap", def, ev("query:uid", strings.Repeat("x", 256)), strings.Repeat("x", 256)},
		{"truncated with prefix", mustNew(t, Config{Prefix: "query:sid", MaxKeyBytes: 10}),
			ev("query:sid", "site7", "query:uid", "user-123456"), "site7:user"},
		{"prefix fills cap", mustNew(t, Config{Prefix: "query:sid", MaxKeyBytes: 8}),
			ev("query:sid", "a-very-long-site", "query:uid", "u1"), "a-very-l"},
		{"header source", mustNew(t, Config{Sources: "header:x-user-id"}), ev("header:X-User-Id", "h1"), "h1"},
	} {
		got := c.k.AppendKey([]byte("pre|"), c.ev)
		if string(got) != "pre|"+c.want {
			t.Errorf("%s: AppendKey = %q, want %q", c.name, got, "pre|"+c.want)
		}
	}
}

func TestAppendKeyNoSource(t *testing.T) {
	k := mustNew(t, Config{Sources: "query:uid,json:user_id", Prefix: "query:sid"})
	dst := []byte("unchanged")
	got := k.AppendKey(dst, ev("query:sid", "site7", "query:uid", ""))
	if string(got) != "unchanged" || len(got) != len(dst) {
		t.Errorf("AppendKey without a value = %q, want dst unchanged", got)
	}
	if got := k.AppendKey(nil, ev()); got != nil {
		t.Errorf("AppendKey(nil, empty event) = %q, want nil", got)
	}
}

func mustNew(t testing.TB, c Config) *Keyer {
	t.Helper()
	k, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestAppendKeyNeverSplitsUTF8(t *testing.T) {
	k, err := New(Config{MaxKeyBytes: 8})
	if err != nil {
		t.Fatal(err)
	}
	// "ab" + three 3-byte runes = 11 bytes; 8 bytes would end inside "ü…".
	got := k.AppendKey(nil, &utf8Event{v: []byte("ab€€€")})
	if string(got) != "ab€€" {
		t.Fatalf("key %q, want %q (cut before the split rune)", got, "ab€€")
	}
}

type utf8Event struct{ v []byte }

func (e *utf8Event) Lookup(kind Kind, _ string) []byte {
	if kind == KindQuery {
		return e.v
	}
	return nil
}

// TestKeyerNames: the members a caller should note for the keyer, each
// once, the prefix's included.
func TestKeyerNames(t *testing.T) {
	k, err := New(Config{Sources: "json:a,query:q,json:b,ip", Prefix: "json:p"})
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Names(KindJSON); !slices.Equal(got, []string{"a", "b", "p"}) {
		t.Errorf("Names(KindJSON) = %q", got)
	}
	if got := k.Names(KindQuery); !slices.Equal(got, []string{"q"}) {
		t.Errorf("Names(KindQuery) = %q", got)
	}
	k, _ = New(Config{Sources: "json:a", Prefix: "json:a"})
	if got := k.Names(KindJSON); !slices.Equal(got, []string{"a"}) {
		t.Errorf("prefix repeating a source: Names = %q", got)
	}
}
