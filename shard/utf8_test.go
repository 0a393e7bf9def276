package shard

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestAppendKeyValidUTF8: a header or cookie value with invalid UTF-8
// gives the key strings.ToValidUTF8 gives, which is what the record
// encoder writes as shard_key, so the Kafka key and shard_key agree.
func TestAppendKeyValidUTF8(t *testing.T) {
	for _, c := range []struct {
		name, val string
		max       int
		prefix    string
	}{
		{"one bad byte", "u\xff1", 0, ""},
		{"a run of bad bytes", "u\xff\xfe\xfd1", 0, ""},
		{"truncated rune at the end", "user\xe2\x82", 0, ""},
		{"surrogate encoding", "a\xed\xa0\x80b", 0, ""},
		{"literal U+FFFD kept", "a\uFFFDb", 0, ""},
		{"cut before a replacement", "abcdef\xff", 8, ""},
		{"cut inside a replacement", "abcdefg\xff", 8, ""},
		{"bad prefix", "u1", 0, "t\xff"},
		{"bad prefix filling the key", "u1", 8, "tenant\xffx"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{Sources: "header:X-User", MaxKeyBytes: c.max}
			e := ev("header:X-User", c.val)
			if c.prefix != "" {
				cfg.Prefix = "cookie:t"
				e.vals[Source{KindCookie, "t"}] = []byte(c.prefix)
			}
			k, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := k.AppendKey(nil, e)
			if !utf8.Valid(got) {
				t.Fatalf("key %q is not valid UTF-8", got)
			}
			want := strings.ToValidUTF8(c.val, replacement)
			if c.prefix != "" {
				want = strings.ToValidUTF8(c.prefix, replacement) + ":" + want
			}
			max := c.max
			if max == 0 {
				max = DefaultMaxKeyBytes
			}
			for len(want) > max {
				_, w := utf8.DecodeLastRuneInString(want)
				want = want[:len(want)-w]
			}
			if string(got) != want {
				t.Fatalf("key %q, want %q", got, want)
			}
		})
	}
}

func FuzzAppendText(f *testing.F) {
	for _, s := range []string{"", "a", "\xff", "a\xff\xfeb", "€\xe2\x82", "\uFFFD"} {
		f.Add([]byte(s), 8)
	}
	f.Fuzz(func(t *testing.T, b []byte, room int) {
		if room < 0 || room > 1<<16 {
			return
		}
		got := appendText(nil, b, room)
		full := strings.ToValidUTF8(string(b), replacement)
		if !utf8.Valid(got) || len(got) > room || !strings.HasPrefix(full, string(got)) {
			t.Fatalf("appendText(%q, %d) = %q", b, room, got)
		}
		if textLen(b) != len(full) {
			t.Fatalf("textLen(%q) = %d, want %d", b, textLen(b), len(full))
		}
		if len(full) <= room && string(got) != full {
			t.Fatalf("appendText(%q, %d) = %q, want %q", b, room, got, full)
		}
	})
}
