package record_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/beacongate/beacongate/ingest/record"
)

// FuzzAppend checks, for arbitrary input, that the generated type always
// decodes Append's output, reads back the (sanitized) input values, and
// that the bytes are exactly deterministic proto.Marshal's.
//
// headers holds the string fields other than user_agent, separated by
// '\n' (gateway_id, request_id, method, host, path, referer, origin,
// content_type, shard_key; the last one takes the rest). query holds the
// parameters as name=value pairs separated by '&'; an empty query means no
// parameters, so "&" means two empty ones.
func FuzzAppend(f *testing.F) {
	f.Fuzz(func(t *testing.T, ts int64, kind uint8, batchIndex uint32, clientIP, payload []byte, userAgent, headers, query string) {
		h := strings.SplitN(headers, "\n", 9)
		h = append(h, make([]string, 9-len(h))...)
		b := &record.Beacon{
			ReceivedAtMicros: ts,
			GatewayID:        []byte(h[0]),
			RequestID:        []byte(h[1]),
			Kind:             record.Kind(kind),
			Method:           []byte(h[2]),
			Host:             []byte(h[3]),
			Path:             []byte(h[4]),
			ClientIP:         clientIP,
			UserAgent:        []byte(userAgent),
			Referer:          []byte(h[5]),
			Origin:           []byte(h[6]),
			ContentType:      []byte(h[7]),
			Payload:          payload,
			ShardKey:         []byte(h[8]),
			BatchIndex:       batchIndex,
		}
		if query != "" {
			for pair := range strings.SplitSeq(query, "&") {
				name, value, _ := strings.Cut(pair, "=")
				b.Params = append(b.Params, record.Param{Name: []byte(name), Value: []byte(value)})
			}
		}
		checkAppend(t, b)

		// Appending after a prefix must give the same bytes after it.
		prefix := []byte{0xde, 0xad}
		got := record.Append(bytes.Clone(prefix), b)
		if !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], record.Append(nil, b)) {
			t.Errorf("Append after a prefix differs from Append(nil)")
		}
	})
}
