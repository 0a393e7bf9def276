package shard

import (
	"errors"
	"fmt"
	"net/textproto"
	"strconv"
	"strings"
)

// Kind says where in a beacon a shard-key source is found.
type Kind uint8

// The zero Kind is deliberately invalid so an unset Source is caught.
const (
	KindQuery  Kind = iota + 1 // a query-string or form parameter
	KindJSON                   // a top-level field of the JSON event
	KindHeader                 // an HTTP request header
	KindCookie                 // a cookie
	KindIP                     // the client IP; always present
)

// DefaultSources is the source list used when the spec is empty: an explicit
// user id, then the SDK's user or anonymous id, and the client IP as the
// last resort so every event gets a key.
const DefaultSources = "query:uid,json:user_id,json:anonymous_id,ip"

var kindNames = [...]string{
	KindQuery:  "query",
	KindJSON:   "json",
	KindHeader: "header",
	KindCookie: "cookie",
	KindIP:     "ip",
}

// String returns the kind as written in a spec ("query", "json", ...).
func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Source is one place a shard key may come from.
type Source struct {
	Kind Kind
	// Name is the parameter, field, header or cookie name; empty for KindIP.
	// Header names are stored in canonical MIME form
	// (textproto.CanonicalMIMEHeaderKey, e.g. "X-User-Id"), so an http.Header
	// can be indexed with it directly; matching stays case-insensitive.
	Name string
}

// String returns the source as written in a spec: "kind:name", or "ip".
func (s Source) String() string {
	if s.Kind == KindIP {
		return "ip"
	}
	return s.Kind.String() + ":" + s.Name
}

// SourceError says which item of a source spec is wrong and why.
type SourceError struct {
	Index int    // 1-based position of the item in the spec
	Item  string // the item as written, surrounding whitespace removed
	Err   error  // what is wrong with it
}

func (e *SourceError) Error() string {
	return fmt.Sprintf("source %d %q: %v", e.Index, e.Item, e.Err)
}

func (e *SourceError) Unwrap() error { return e.Err }

// ParseSources parses a comma-separated source list such as
// "query:uid,json:user_id,header:X-User-Id,cookie:uid,ip". Kinds are query,
// json, header, cookie and the bare word ip; whitespace around items, kinds
// and names is ignored. An empty (or all-blank) spec means DefaultSources.
//
// Because ip is always present, anything after it could never be used, so
// ip must come last. Empty items, unknown kinds, missing names, ip with a
// name, invalid header or cookie names and duplicates are rejected; the
// error is a *SourceError naming the item.
func ParseSources(spec string) ([]Source, error) {
	srcs, err := parseSources(spec)
	if err != nil {
		return nil, fmt.Errorf("shard: %w", err)
	}
	return srcs, nil
}

func parseSources(spec string) ([]Source, error) {
	if strings.TrimSpace(spec) == "" {
		spec = DefaultSources
	}
	items := strings.Split(spec, ",")
	srcs := make([]Source, 0, len(items))
	for i, raw := range items {
		item := strings.TrimSpace(raw)
		fail := func(err error) ([]Source, error) {
			return nil, &SourceError{Index: i + 1, Item: item, Err: err}
		}
		src, err := parseSource(item)
		if err != nil {
			return fail(err)
		}
		if n := len(srcs); n > 0 && srcs[n-1].Kind == KindIP {
			return fail(errors.New("unreachable: ip comes before it and is always present (put ip last)"))
		}
		for j, prev := range srcs {
			if prev == src {
				return fail(fmt.Errorf("duplicate of source %d", j+1))
			}
		}
		srcs = append(srcs, src)
	}
	return srcs, nil
}

// parseSource parses one trimmed item.
func parseSource(item string) (Source, error) {
	if item == "" {
		return Source{}, errors.New("empty item (stray comma?)")
	}
	kindStr, name, hasName := strings.Cut(item, ":")
	kindStr, name = strings.TrimSpace(kindStr), strings.TrimSpace(name)
	var kind Kind
	for k, n := range kindNames {
		if n != "" && n == kindStr {
			kind = Kind(k)
		}
	}
	switch {
	case kindStr == "":
		return Source{}, errors.New("empty kind (want kind:name or ip)")
	case kind == 0:
		return Source{}, fmt.Errorf("unknown kind %q (want query, json, header, cookie or ip)", kindStr)
	case kind == KindIP:
		if hasName {
			return Source{}, errors.New("ip takes no name (write just ip)")
		}
		return Source{Kind: KindIP}, nil
	case !hasName:
		return Source{}, fmt.Errorf("missing name (want %s:NAME)", kind)
	case name == "":
		return Source{}, fmt.Errorf("empty name (want %s:NAME)", kind)
	}
	switch kind {
	case KindHeader:
		if !isToken(name) {
			return Source{}, fmt.Errorf("header name %q is not a valid HTTP token", name)
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
	case KindCookie:
		if !isToken(name) {
			return Source{}, fmt.Errorf("cookie name %q is not a valid HTTP token", name)
		}
	}
	return Source{Kind: kind, Name: name}, nil
}

// isToken reports whether s is an RFC 9110 token, the syntax of header and
// cookie names; anything else could never match a real request.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
