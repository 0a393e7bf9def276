package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/producer"
	"github.com/beacongate/beacongate/internal/kafka/relay"
	"github.com/beacongate/beacongate/internal/kafka/spool"
)

// spoolCommand is `beacongate spool inspect|replay`: look into a spool
// left by a gateway (which must not be running on it), or replay it into a
// given cluster and topic.
func spoolCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "inspect" && args[0] != "replay") {
		fmt.Fprintln(stderr, "usage: beacongate spool inspect|replay -spool.dir DIR [replay: -kafka.brokers B -kafka.topic T -kafka.config k=v]")
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("beacongate spool "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("spool.dir", "./data/spool", "spool directory")
	brokers := fs.String("kafka.brokers", "127.0.0.1:9092", "replay: bootstrap servers")
	topic := fs.String("kafka.topic", "beacons", "replay: topic")
	timeout := fs.Duration("timeout", 10*time.Minute, "replay: give up after this long")
	settings := kvFlag{}
	fs.Var(settings, "kafka.config", "replay: librdkafka property key=value, repeatable")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	log := newLogger(zap.InfoLevel)
	defer func() { _ = log.Sync() }()
	sp, err := spool.Open(spool.Config{Dir: *dir}, log.Named("spool"))
	if err != nil {
		fmt.Fprintf(stderr, "beacongate spool %s: %v\n", verb, err)
		return 1
	}
	defer sp.Close()
	if verb == "inspect" {
		st := sp.Stats()
		out := map[string]any{"dir": *dir, "records": st.Records, "bytes": st.Bytes, "segments": st.Segments, "corrupt_skipped": sp.Corrupt()}
		if !st.Oldest.IsZero() {
			out["oldest"] = st.Oldest.UTC().Format(time.RFC3339Nano)
			out["oldest_age_seconds"] = time.Since(st.Oldest).Seconds()
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return 0
	}

	before := sp.Stats()
	prod, err := producer.New(producer.Config{Brokers: *brokers, Topic: *topic, Settings: settings}, log.Named("producer"))
	if err != nil {
		fmt.Fprintf(stderr, "beacongate spool replay: %v\n", err)
		return 1
	}
	defer prod.Close()
	rel, err := relay.New(relay.Config{}, prod, sp, log.Named("relay"))
	if err != nil {
		fmt.Fprintf(stderr, "beacongate spool replay: %v\n", err)
		return 1
	}
	prod.SetFailureHandler(rel.Keep)
	rel.Start()
	deadline := time.Now().Add(*timeout)
	for rel.Spooling() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	rel.Stop()
	left := prod.Flush(30 * time.Second)
	after := sp.Stats()
	fmt.Fprintf(stdout, "replayed %d records to %s on %s; %d left in the spool, %d undelivered\n",
		before.Records-after.Records, *topic, *brokers, after.Records, left)
	if after.Records > 0 || left > 0 {
		return 1
	}
	return 0
}
