package shard_test

import (
	"fmt"
	"net/url"

	"github.com/beacongate/beacongate/shard"
)

// beacon is a minimal shard.Event over an already-parsed request. A real one
// looks values up in the decoded request without copying them.
type beacon struct {
	query url.Values
	json  map[string]string
	ip    string
}

func (b *beacon) Lookup(kind shard.Kind, name string) []byte {
	switch kind {
	case shard.KindQuery:
		return []byte(b.query.Get(name))
	case shard.KindJSON:
		return []byte(b.json[name])
	case shard.KindIP:
		return []byte(b.ip)
	}
	return nil
}

// Keys come from the first source that has a value; the site prefix keeps
// sites apart. The partition is what Kafka's Java client and librdkafka's
// murmur2_random partitioner pick for the same key, so computing it is only
// needed for diagnostics: the producer is given the key.
func Example_partition() {
	k, err := shard.New(shard.Config{
		Sources: "query:uid,json:user_id,ip",
		Prefix:  "query:sid",
	})
	if err != nil {
		panic(err)
	}
	events := []*beacon{
		{query: url.Values{"uid": {"u1"}, "sid": {"site7"}}, ip: "203.0.113.7"},
		{query: url.Values{"sid": {"site7"}}, json: map[string]string{"user_id": "user-42"}, ip: "203.0.113.7"},
		{ip: "203.0.113.7"},
	}
	var key []byte // reused across events
	for _, ev := range events {
		key = k.AppendKey(key[:0], ev)
		fmt.Printf("key %q -> partition %d of 16\n", key, shard.Partition(key, 16))
	}
	// Output:
	// key "site7:u1" -> partition 2 of 16
	// key "site7:user-42" -> partition 11 of 16
	// key "203.0.113.7" -> partition 6 of 16
}
