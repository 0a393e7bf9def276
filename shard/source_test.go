package shard

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseSourcesGood(t *testing.T) {
	defaults := []Source{{KindQuery, "uid"}, {KindJSON, "user_id"}, {KindJSON, "anonymous_id"}, {KindIP, ""}}
	for _, c := range []struct {
		spec string
		want []Source
	}{
		{"", defaults},
		{"  \t", defaults},
		{DefaultSources, defaults},
		{"query:uid", []Source{{KindQuery, "uid"}}},
		{"ip", []Source{{KindIP, ""}}},
		{" json:user_id , header:x-user-id,cookie:_uid ,ip ", []Source{
			{KindJSON, "user_id"}, {KindHeader, "X-User-Id"}, {KindCookie, "_uid"}, {KindIP, ""},
		}},
		{"query: uid", []Source{{KindQuery, "uid"}}},
		{"json:a:b", []Source{{KindJSON, "a:b"}}},
		{"query:uid,json:uid,cookie:uid", []Source{{KindQuery, "uid"}, {KindJSON, "uid"}, {KindCookie, "uid"}}},
	} {
		got, err := ParseSources(c.spec)
		if err != nil {
			t.Errorf("ParseSources(%q): %v", c.spec, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseSources(%q) = %v, want %v", c.spec, got, c.want)
		}
	}
}

func TestParseSourcesBad(t *testing.T) {
	for _, c := range []struct {
		spec  string
		index int
		msg   string // the whole error text
	}{
		{"query:uid,json:a,jsn:x", 3, `shard: source 3 "jsn:x": unknown kind "jsn" (want query, json, header, cookie or ip)`},
		{"Query:uid", 1, `shard: source 1 "Query:uid": unknown kind "Query" (want query, json, header, cookie or ip)`},
		{"query:uid,,ip", 2, `shard: source 2 "": empty item (stray comma?)`},
		{"query:uid,", 2, `shard: source 2 "": empty item (stray comma?)`},
		{",", 1, `shard: source 1 "": empty item (stray comma?)`},
		{":uid", 1, `shard: source 1 ":uid": empty kind (want kind:name or ip)`},
		{"query", 1, `shard: source 1 "query": missing name (want query:NAME)`},
		{"json:", 1, `shard: source 1 "json:": empty name (want json:NAME)`},
		{"cookie:  ", 1, `shard: source 1 "cookie:": empty name (want cookie:NAME)`},
		{"ip:x", 1, `shard: source 1 "ip:x": ip takes no name (write just ip)`},
		{"ip:", 1, `shard: source 1 "ip:": ip takes no name (write just ip)`},
		{"header:x user", 1, `shard: source 1 "header:x user": header name "x user" is not a valid HTTP token`},
		{"cookie:a=b", 1, `shard: source 1 "cookie:a=b": cookie name "a=b" is not a valid HTTP token`},
		{"query:uid,json:x,query:uid", 3, `shard: source 3 "query:uid": duplicate of source 1`},
		{"header:X-Uid,header:x-uid", 2, `shard: source 2 "header:x-uid": duplicate of source 1`},
		{"ip,query:uid", 2, `shard: source 2 "query:uid": unreachable: ip comes before it and is always present (put ip last)`},
		{"ip,ip", 2, `shard: source 2 "ip": unreachable: ip comes before it and is always present (put ip last)`},
	} {
		got, err := ParseSources(c.spec)
		if err == nil {
			t.Errorf("ParseSources(%q) = %v, want error", c.spec, got)
			continue
		}
		if err.Error() != c.msg {
			t.Errorf("ParseSources(%q) error:\n got %s\nwant %s", c.spec, err, c.msg)
		}
		var se *SourceError
		if !errors.As(err, &se) || se.Index != c.index {
			t.Errorf("ParseSources(%q) error %v: want a *SourceError with Index %d", c.spec, err, c.index)
		}
	}
}

func TestSourceStringRoundTrip(t *testing.T) {
	const spec = "query:uid,json:user_id,header:X-User-Id,cookie:uid,ip"
	srcs, err := ParseSources(spec)
	if err != nil {
		t.Fatal(err)
	}
	parts := make([]string, len(srcs))
	for i, s := range srcs {
		parts[i] = s.String()
	}
	if got := strings.Join(parts, ","); got != spec {
		t.Errorf("round trip = %q, want %q", got, spec)
	}
	if got := Kind(0).String(); got != "Kind(0)" {
		t.Errorf("Kind(0).String() = %q", got)
	}
	if got := Kind(99).String(); got != "Kind(99)" {
		t.Errorf("Kind(99).String() = %q", got)
	}
}
