package ingest

import "github.com/beacongate/beacongate/ingest/event"

// segmentFields are the raw values of the members of a Segment event that
// the gateway reads, noted in one pass over the event (segmentEvent). As
// with event.Field, the last of duplicate members wins.
type segmentFields struct {
	typ, userID, anonymousID, event, groupID, previousID, messageID []byte
	context, integrations                                           []byte
	hasContext, hasIntegrations, hasSentAt                          bool
}

// note records m if the gateway reads it, and reports whether m is one of
// the members never copied as sent: rebuilt (type, context, integrations,
// receivedAt) or secret (writeKey).
func (f *segmentFields) note(m event.Member) (drop bool) {
	name := string(m.Name) // no allocation: only compared
	if m.Esc {
		name = unescapedName(m)
	}
	switch name {
	case "type":
		f.typ = m.Value
		return true
	case "userId":
		f.userID = m.Value
	case "anonymousId":
		f.anonymousID = m.Value
	case "event":
		f.event = m.Value
	case "groupId":
		f.groupID = m.Value
	case "previousId":
		f.previousID = m.Value
	case "messageId":
		f.messageID = m.Value
	case "sentAt":
		f.hasSentAt = true
	case "context":
		f.context, f.hasContext = m.Value, true
		return true
	case "integrations":
		f.integrations, f.hasIntegrations = m.Value, true
		return true
	case "receivedAt", "writeKey":
		return true
	}
	return false
}

// segmentNames are the member names note knows.
var segmentNames = []string{"type", "userId", "anonymousId", "event", "groupId", "previousId", "messageId",
	"sentAt", "context", "integrations", "receivedAt", "writeKey"}

// unescapedName is the name of an escaped member among segmentNames, or
// "" (rare: SDKs never escape plain ASCII names).
func unescapedName(m event.Member) string {
	for _, n := range segmentNames {
		if m.Is(n) {
			return n
		}
	}
	return ""
}

// segmentIdentifier reports whether m identifies a user: removed on
// opt-out.
func segmentIdentifier(m event.Member) bool {
	return m.Is("userId") || m.Is("anonymousId") || m.Is("previousId")
}

// keyInMember reports whether m's name is one of names.
func keyInMember(m event.Member, names []string) bool {
	for _, n := range names {
		if m.Is(n) {
			return true
		}
	}
	return false
}

// nonEmpty reports whether a raw value is a non-empty string or a number,
// what event.Field would return as a non-empty value.
func nonEmpty(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	switch c := v[0]; {
	case c == '"':
		return len(v) > 2
	case c == '-' || c >= '0' && c <= '9':
		return true
	}
	return false
}
