// Package record encodes beacongate.v1.Beacon records on the hot path by
// appending protobuf wire format into a caller's buffer, without
// allocating. Its output is byte-for-byte what proto.Marshal of the
// generated type (package beaconv1) writes for the same values; the tests
// prove it.
package record

// Kind mirrors the beacongate.v1.Kind enum values.
type Kind uint8

// The kinds of record; the values are the proto enum numbers.
const (
	KindUnspecified Kind = 0
	KindPixel       Kind = 1
	KindBeacon      Kind = 2
	KindBatchEvent  Kind = 3
	KindClick       Kind = 4
)

// Param is one decoded query or form parameter. Both slices are borrowed.
type Param struct {
	Name  []byte
	Value []byte
}

// Beacon is the hot-path view of one beacongate.v1.Beacon. Every slice is
// borrowed (from a fasthttp.RequestCtx or a pooled scratch buffer) and is
// not retained after Append returns. Empty fields are not written, as in
// proto3.
type Beacon struct {
	ReceivedAtMicros int64
	GatewayID        []byte
	RequestID        []byte
	Kind             Kind
	Method           []byte
	Host             []byte
	Path             []byte
	ClientIP         []byte // 4 or 16 bytes
	UserAgent        []byte
	Referer          []byte
	Origin           []byte
	ContentType      []byte
	Params           []Param
	// ParamsValidUTF8 says every Param name and value is known to be valid
	// UTF-8 (form.Parse rejects anything else), so Append need not check
	// them again: the check is a measurable share of encoding a pixel.
	// Leave it false for params from anywhere else.
	ParamsValidUTF8 bool
	Payload         []byte
	ShardKey        []byte
	BatchIndex      uint32
	// NetworkUserID is the gateway-set browser id (-identity.cookie).
	NetworkUserID []byte
	// Protocol is the wire protocol the event arrived in (0: beacongate's).
	Protocol Protocol
	// EventType is the protocol's event type (Segment call type, Snowplow e).
	EventType []byte
	// EventID is the sender's event id (Segment messageId, Snowplow eid).
	EventID []byte
	// Site is the site the request named or its write key mapped to.
	Site []byte
	// Overflow marks a hot key's record sent off its partition.
	Overflow bool
}

// Protocol mirrors the beacongate.v1.Protocol enum values.
type Protocol uint8

// The wire protocols; the values are the proto enum numbers.
const (
	ProtocolUnspecified Protocol = 0
	ProtocolSegment     Protocol = 1
	ProtocolSnowplow    Protocol = 2
)
