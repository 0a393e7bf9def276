package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
)

// tailCommand is `beacongate tail`: it prints the records of a topic as
// JSON lines, decoding beacongate.v1.Beacon values, for people debugging
// consumers. Values that are not a Beacon (dead letters) are printed raw.
func tailCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("beacongate tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("kafka.brokers", "127.0.0.1:9092", "bootstrap servers")
	topic := fs.String("kafka.topic", "beacons", "topic to read")
	from := fs.String("from", "end", "where to start: beginning or end")
	n := fs.Int("n", 0, "stop after this many records (0: until interrupted or -timeout)")
	timeout := fs.Duration("timeout", 0, "stop after this long without a record (0: never)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	offset := kgo.NewOffset().AtEnd()
	switch *from {
	case "beginning":
		offset = kgo.NewOffset().AtStart()
	case "end":
	default:
		fmt.Fprintf(stderr, "beacongate tail: -from %q: want beginning or end\n", *from)
		return 2
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(*brokers), kgo.ConsumeTopics(*topic), kgo.ConsumeResetOffset(offset))
	if err != nil {
		fmt.Fprintf(stderr, "beacongate tail: %v\n", err)
		return 1
	}
	defer cl.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	enc := json.NewEncoder(stdout)
	seen := 0
	for *n == 0 || seen < *n {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if *timeout > 0 {
			pctx, cancel = context.WithTimeout(ctx, *timeout)
		}
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil || (pctx.Err() != nil && fs.NumRecords() == 0) {
			break
		}
		for _, r := range fs.Records() {
			if *n > 0 && seen >= *n {
				break
			}
			_ = enc.Encode(tailLine(r))
			seen++
		}
	}
	return 0
}

func tailLine(r *kgo.Record) map[string]any {
	line := map[string]any{
		"topic": r.Topic, "partition": r.Partition, "offset": r.Offset,
		"timestamp": r.Timestamp.UTC().Format(time.RFC3339Nano), "key": string(r.Key),
	}
	if len(r.Headers) > 0 {
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		line["headers"] = h
	}
	var b beaconv1.Beacon
	if err := proto.Unmarshal(r.Value, &b); err == nil && b.Kind != beaconv1.Kind_KIND_UNSPECIFIED {
		line["beacon"] = beaconJSON(&b)
	} else {
		line["value_base64"] = base64.StdEncoding.EncodeToString(r.Value)
	}
	return line
}

// beaconJSON is the Beacon as protojson (proto field names), with
// client_ip as an address (192.0.2.1, 2001:db8::1) instead of the base64
// that protojson gives bytes.
func beaconJSON(b *beaconv1.Beacon) json.RawMessage {
	js, _ := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	ip, ok := netip.AddrFromSlice(b.ClientIp)
	if !ok {
		return js
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(js, &m); err != nil {
		return js
	}
	m["client_ip"], _ = json.Marshal(ip.String())
	out, err := json.Marshal(m)
	if err != nil {
		return js
	}
	return out
}
