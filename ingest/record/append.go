package record

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of beacongate.v1.Beacon and beacongate.v1.Param, as in
// proto/beacongate/v1/beacon.proto.
const (
	fieldReceivedAtUs  protowire.Number = 1
	fieldGatewayID     protowire.Number = 2
	fieldRequestID     protowire.Number = 3
	fieldKind          protowire.Number = 4
	fieldMethod        protowire.Number = 5
	fieldHost          protowire.Number = 6
	fieldPath          protowire.Number = 7
	fieldClientIP      protowire.Number = 8
	fieldUserAgent     protowire.Number = 9
	fieldReferer       protowire.Number = 10
	fieldOrigin        protowire.Number = 11
	fieldContentType   protowire.Number = 12
	fieldParams        protowire.Number = 13
	fieldPayload       protowire.Number = 14
	fieldShardKey      protowire.Number = 15
	fieldBatchIndex    protowire.Number = 16
	fieldNetworkUserID protowire.Number = 17
	fieldProtocol      protowire.Number = 18
	fieldEventType     protowire.Number = 19
	fieldEventID       protowire.Number = 20
	fieldSite          protowire.Number = 21
	fieldOverflow      protowire.Number = 22

	fieldParamName  protowire.Number = 1
	fieldParamValue protowire.Number = 2
)

// Append appends the protobuf binary encoding of b, as a
// beacongate.v1.Beacon, to dst and returns the extended slice.
//
// It is written by hand with protowire rather than by filling a generated
// beaconv1.Beacon and calling proto.Marshal, because that would copy every
// borrowed slice of the request into a new string (one allocation per
// field and per parameter) and allocate the *Param values, on every event.
// Append reads the borrowed slices in place and allocates nothing when dst
// has room.
//
// The output is exactly what deterministic proto.Marshal writes for the
// same values: fields in ascending number order, zero values omitted
// (proto3), every Param written even when empty. Strings that are not
// valid UTF-8 are written with each run of invalid bytes replaced by
// U+FFFD, as strings.ToValidUTF8 does, because proto.Unmarshal rejects a
// record with an invalid string field.
func Append(dst []byte, b *Beacon) []byte {
	if b.ReceivedAtMicros != 0 {
		dst = protowire.AppendTag(dst, fieldReceivedAtUs, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(b.ReceivedAtMicros))
	}
	dst = appendString(dst, fieldGatewayID, b.GatewayID)
	dst = appendString(dst, fieldRequestID, b.RequestID)
	if b.Kind != KindUnspecified {
		dst = protowire.AppendTag(dst, fieldKind, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(b.Kind))
	}
	dst = appendString(dst, fieldMethod, b.Method)
	dst = appendString(dst, fieldHost, b.Host)
	dst = appendString(dst, fieldPath, b.Path)
	dst = appendBytes(dst, fieldClientIP, b.ClientIP)
	dst = appendString(dst, fieldUserAgent, b.UserAgent)
	dst = appendString(dst, fieldReferer, b.Referer)
	dst = appendString(dst, fieldOrigin, b.Origin)
	dst = appendString(dst, fieldContentType, b.ContentType)
	for i := range b.Params {
		p := &b.Params[i]
		// The Param's length prefix comes first, so both strings are
		// measured (and checked for UTF-8) before either is written.
		nameLen, nameOK := len(p.Name), true
		valueLen, valueOK := len(p.Value), true
		if !b.ParamsValidUTF8 {
			nameLen, nameOK = validUTF8Len(p.Name)
			valueLen, valueOK = validUTF8Len(p.Value)
		}
		dst = protowire.AppendTag(dst, fieldParams, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(fieldSize(fieldParamName, nameLen)+fieldSize(fieldParamValue, valueLen)))
		dst = appendMeasured(dst, fieldParamName, p.Name, nameLen, nameOK)
		dst = appendMeasured(dst, fieldParamValue, p.Value, valueLen, valueOK)
	}
	dst = appendBytes(dst, fieldPayload, b.Payload)
	dst = appendString(dst, fieldShardKey, b.ShardKey)
	if b.BatchIndex != 0 {
		dst = protowire.AppendTag(dst, fieldBatchIndex, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(b.BatchIndex))
	}
	dst = appendString(dst, fieldNetworkUserID, b.NetworkUserID)
	if b.Protocol != ProtocolUnspecified {
		dst = protowire.AppendTag(dst, fieldProtocol, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(b.Protocol))
	}
	dst = appendString(dst, fieldEventType, b.EventType)
	dst = appendString(dst, fieldEventID, b.EventID)
	dst = appendString(dst, fieldSite, b.Site)
	if b.Overflow {
		dst = protowire.AppendTag(dst, fieldOverflow, protowire.VarintType)
		dst = protowire.AppendVarint(dst, 1)
	}
	return dst
}

// appendBytes appends a proto3 bytes field; empty is not written.
func appendBytes(dst []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	return protowire.AppendBytes(dst, v)
}

// appendString appends a proto3 string field; empty is not written. Valid
// UTF-8 (nearly always) costs one utf8.Valid scan; invalid input is
// scanned once more to size its sanitized form.
func appendString(dst []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	if utf8.Valid(v) {
		return protowire.AppendBytes(dst, v)
	}
	dst = protowire.AppendVarint(dst, uint64(sanitizedLen(v)))
	return appendSanitized(dst, v)
}

// appendMeasured is appendString for a string already measured by
// validUTF8Len.
func appendMeasured(dst []byte, num protowire.Number, v []byte, n int, valid bool) []byte {
	if n == 0 {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(n))
	if valid {
		return append(dst, v...)
	}
	return appendSanitized(dst, v)
}

// fieldSize is the encoded size of a length-delimited field whose content
// is n bytes long; 0 when n is 0, since proto3 omits it.
func fieldSize(num protowire.Number, n int) int {
	if n == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}
